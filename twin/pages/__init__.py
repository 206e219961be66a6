"""Workbench pages beyond the shell's own: each module exposes ``render(lang)`` and is registered in ``app.py``'s ``PAGES``.

Pages hold widgets, caching and layout only; runs, tables and maps come from
library functions (:mod:`twin.coupler`, :mod:`twin.replay`, :mod:`twin.runstore`).
"""
