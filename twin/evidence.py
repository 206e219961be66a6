"""Evidence that stands up outside the machine: an Ed25519 signature of a run's head, and an anchor file.

A run's *head* is its manifest's ``manifest_sha256`` (:func:`twin.runstore.manifest_digest`),
which covers the parameters, the KPIs file, every table and the event log's
last hash.  Two ways to make it stand up elsewhere:

- **Signature** (:func:`sign_run`): Ed25519 (the ``cryptography`` package) with
  a private key the user holds, over ``citytwin-run-head/1\\n<run_id>\\n<head>``,
  written beside the manifest as ``manifest.sig`` (JSON: algorithm, run id,
  head, public key, signature).  :func:`check_signature` needs the *public*
  key from the user, never the one inside the file, so a forger who edits
  the run and re-signs with another key is caught.
- **Anchor** (:func:`anchor_run`): the head appended to an append-only,
  hash-chained anchor file (an :class:`twin.eventlog.EventLog`, one ``anchor``
  record per run) that lives elsewhere -- a shared drive, a notary, a
  repository.  :func:`check_anchor` verifies the anchor file's chain and that
  it holds the run's current head.

Key files are PEM: :func:`generate_key` writes ``KEY`` (PKCS#8 private key,
mode 0600, never overwritten) and ``KEY.pub`` (the public key).

Examples
--------
>>> import tempfile, pathlib
>>> import pandas as pd
>>> from twin.runstore import RunWriter
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> with RunWriter(d / "r1") as w:
...     _ = w.commit({"t": pd.DataFrame({"a": [1.0]})}, params={"seed": 1})
>>> priv, pub = generate_key(d / "key")
>>> _ = sign_run(d / "r1", priv)
>>> check_signature(d / "r1", pub)[0]
True
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from gisdata.errors import CorruptFileError, InputFileNotFoundError, TwinError
from twin.eventlog import EventLog, parse_json_strict, verify_log
from twin.runstore import SIGNATURE, read_manifest, verify_run

SIGNED_PREFIX = b"citytwin-run-head/1\n"


class EvidenceError(TwinError, ValueError):
    """A key, signature or anchor file cannot be used, or the run is not intact enough to sign."""


def _message(run_id: str, head: str) -> bytes:
    return SIGNED_PREFIX + run_id.encode("utf-8") + b"\n" + head.encode("ascii")


def generate_key(path: str | Path) -> tuple[Path, Path]:
    """Write a new Ed25519 key pair: ``path`` (private, mode 0600) and ``path.pub`` (public).

    Raises
    ------
    EvidenceError
        Either file exists already (keys are never overwritten).
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    priv_path = Path(path)
    pub_path = priv_path.with_name(priv_path.name + ".pub")
    key = Ed25519PrivateKey.generate()
    priv = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())
    pub = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    for target, data, mode in ((priv_path, priv, 0o600), (pub_path, pub, 0o644)):
        try:
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
        except FileExistsError:
            raise EvidenceError(f"{target}: exists; keys are never overwritten") from None
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
    return priv_path, pub_path


def _load_key(path: str | Path, private: bool):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

    p = Path(path)
    if not p.is_file():
        raise InputFileNotFoundError(f"{p}: key file not found")
    data = p.read_bytes()
    if len(data) > 16_384:
        raise EvidenceError(f"{p}: too large for an Ed25519 PEM key")
    try:
        key = (serialization.load_pem_private_key(data, password=None) if private
               else serialization.load_pem_public_key(data))
    except (ValueError, TypeError) as exc:
        kind = "private" if private else "public"
        raise EvidenceError(f"{p}: not an unencrypted PEM {kind} key ({' '.join(str(exc).split())[:120]})") from None
    want = Ed25519PrivateKey if private else Ed25519PublicKey
    if not isinstance(key, want):
        raise EvidenceError(f"{p}: not an Ed25519 key ({type(key).__name__})")
    return key


def _intact_head(run_dir: Path) -> tuple[str, str]:
    check = verify_run(run_dir)
    if not check.ok or not check.head_sha256:
        raise EvidenceError(f"{run_dir}: not intact, refusing to vouch for it: {check.message}")
    return read_manifest(run_dir)["run_id"], check.head_sha256


def sign_run(run_dir: str | Path, private_key: str | Path) -> Path:
    """Sign an intact run's head with an Ed25519 private key; writes ``RUN/manifest.sig``.

    Returns
    -------
    Path
        The signature file.

    Raises
    ------
    EvidenceError
        The run is not intact (it is verified first), or the key is not an Ed25519 private key.
    """
    from cryptography.hazmat.primitives import serialization

    run_dir = Path(run_dir)
    key = _load_key(private_key, private=True)
    run_id, head = _intact_head(run_dir)
    pub = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    sig = {"algorithm": "ed25519", "format": SIGNED_PREFIX.decode().strip(), "run_id": run_id, "head_sha256": head,
           "public_key": pub.hex(), "signature": key.sign(_message(run_id, head)).hex(),
           "signed_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    from gisdata.paths import atomic_path

    path = run_dir / SIGNATURE
    with atomic_path(path) as tmp:  # an unpredictable temporary name, never a followed symlink
        tmp.write_text(json.dumps(sig, indent=1, sort_keys=True), encoding="utf-8")
    return path


def check_signature(run_dir: str | Path, public_key: str | Path) -> tuple[bool, str]:
    """Check ``RUN/manifest.sig`` against the run's current head and the user's public key.

    Returns
    -------
    (bool, str)
        Whether the signature holds, and one line saying why (not).
    """
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import serialization

    run_dir = Path(run_dir)
    key = _load_key(public_key, private=False)
    path = run_dir / SIGNATURE
    if path.is_symlink() or not path.is_file():
        return False, f"{SIGNATURE}: missing (the run was never signed)"
    try:
        sig = parse_json_strict(path.read_bytes())
        signature = bytes.fromhex(sig["signature"])
        run_id, head = str(sig["run_id"]), str(sig["head_sha256"])
    except (ValueError, KeyError, TypeError):
        return False, f"{SIGNATURE}: malformed"
    check = verify_run(run_dir)
    if check.head_sha256 is None or check.head_sha256 != head:
        return False, f"{SIGNATURE}: signs head {head[:12]}, but the run's head is " \
                      f"{(check.head_sha256 or 'unknown (manifest edited)')[:12]}"
    mine = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex()
    if sig.get("public_key") != mine:
        return False, f"{SIGNATURE}: made with another key than {public_key}"
    try:
        key.verify(signature, _message(run_id, head))
    except InvalidSignature:
        return False, f"{SIGNATURE}: the Ed25519 signature does not verify with {public_key}"
    return True, f"signature ok (ed25519, head {head[:12]})"


def anchor_run(run_dir: str | Path, anchor_file: str | Path) -> dict:
    """Append an intact run's head to an append-only, hash-chained anchor file.

    Returns
    -------
    dict
        The anchor record written.

    Raises
    ------
    EvidenceError
        The run is not intact.
    CorruptFileError
        The anchor file exists but its chain is broken (never appended to then).
    """
    run_id, head = _intact_head(Path(run_dir))
    with EventLog(anchor_file, fsync=True) as log:
        return log.append(time.time(), "anchor", f"run:{run_id}", payload={"run_id": run_id, "head_sha256": head})


def check_anchor(run_dir: str | Path, anchor_file: str | Path) -> tuple[bool, str]:
    """Check that an intact anchor file holds the run's current head.

    Returns
    -------
    (bool, str)
        Whether it does, and one line saying why (not).
    """
    from twin.eventlog import iter_log

    p = Path(anchor_file)
    if not p.is_file():
        raise InputFileNotFoundError(f"{p}: anchor file not found")
    res = verify_log(p)
    if not res.ok:
        return False, f"anchor file {p}: broken chain: {res.message}"
    head = verify_run(run_dir).head_sha256
    if head is None:
        return False, f"anchor file {p}: the run's manifest is edited; its head cannot match"
    try:
        heads = {(r.get("payload") or {}).get("head_sha256") for r in iter_log(p) if r.get("kind") == "anchor"}
    except CorruptFileError as exc:
        return False, f"anchor file {p}: {exc}"
    if head not in heads:
        return False, f"anchor file {p}: does not hold the run's head {head[:12]}"
    return True, f"anchored in {p} (head {head[:12]})"


__all__ = ["EvidenceError", "anchor_run", "check_anchor", "check_signature", "generate_key", "sign_run"]
