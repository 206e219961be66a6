"""`twin demo --quick`: forecast, coupled storm (siloed vs staging) and a self-contained report."""

from __future__ import annotations

import re

from click.testing import CliRunner

from twin.cli import cli


def test_demo_quick_writes_a_self_contained_report(tmp_path):
    out = tmp_path / "demo"
    result = CliRunner().invoke(cli, ["demo", "--quick", "--out", str(out)])
    assert result.exit_code == 0, result.output + repr(result.exception)

    for name in ("city.png", "city.html", "report.html", "flood_risk.png", "forecast/risk_points.csv",
                 "forecast/plan.json", "forecast/hydrographs.png"):
        assert (out / name).is_file(), name
    text = (out / "report.html").read_text(encoding="utf-8")
    # self-contained: no network sources, pictures inlined
    assert not re.search(r"""(src|href)\s*=\s*['"]?(https?:)?//""", text, re.IGNORECASE)
    assert "data:image/png;base64," in text
    assert 'id=\'kpi-table\'' in text and "response p90" in text and "duplicate dispatches" in text
    assert "siloed" in text and "forecast_staging" in text
    assert 'id=\'risk-table\'' in text and "probability" in text
    assert "city.html" in text  # the 3D scene is linked and embedded
    # the headline and the city summary are printed
    assert "manholes" in result.output
    assert "risk points in the next 24 h" in result.output
    assert re.search(r"response p90: siloed .* vs staging", result.output)
    assert "duplicate dispatches: siloed" in result.output
