from __future__ import annotations

import pytest

from cali.contracts.levels import Level
from cali.contracts.settings import ConsumerSettings
from cali.ingest.level_filter import LevelFilter


def test_default_minimum_and_per_service_overrides() -> None:
    flt = LevelFilter(Level.WARN, {"payments": Level.INFO, "noisy": Level.ERROR})
    assert flt.keep(Level.WARN, "checkout") and not flt.keep(Level.INFO, "checkout")
    assert flt.keep(Level.INFO, "payments") and not flt.keep(Level.DEBUG, "payments")
    assert not flt.keep(Level.WARN, "noisy") and flt.keep(Level.FATAL, "noisy")
    assert flt.threshold("payments") is Level.INFO and flt.threshold("other") is Level.WARN


def test_settings_parse_overrides_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MIN_LEVEL", "error")
    monkeypatch.setenv("LEVEL_OVERRIDES", '{"payments": "info"}')
    settings = ConsumerSettings()
    flt = LevelFilter(settings.min_level, settings.level_overrides)
    assert flt.keep(Level.INFO, "payments") and not flt.keep(Level.WARN, "checkout")
