"""Metrics: one module per family, each a pure ``analyze(clip, **options) -> <Name>Result``.

Modules are imported on demand (``from pytest_ltx.metrics import motion``) so that importing the package
costs nothing; the heavy libraries they use are imported inside their functions.
"""
