"""Fixtures for the plugin's own tests.

Shared, expensive fixtures (the tiny LTX-2 model, the OCR reader, the tiny CLIP model, real clips) live
in ``tests/fixtures/<area>.py`` — session-scoped, built once — and are collected here.
"""

import importlib
import pkgutil

import pytest

from tests import fixtures as _fixtures

for _mod in pkgutil.iter_modules(_fixtures.__path__):
    _m = importlib.import_module(f"{_fixtures.__name__}.{_mod.name}")
    globals().update({k: v for k, v in vars(_m).items() if not k.startswith("_")})


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
