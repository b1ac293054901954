"""The README stays true: its settings table is the settings model, every command is listed."""

from __future__ import annotations

from pathlib import Path

from bot.app import App
from bot.settings import load_settings, settings_table
from lm_service.local import InProcessLMClient

README = Path(__file__).resolve().parents[2] / "README.md"


def test_settings_table_matches_the_model() -> None:
    assert settings_table() in README.read_text(encoding="utf-8"), (
        "README.md's settings table is out of date: paste bot.settings.settings_table()")


def test_every_command_is_in_the_readme(tmp_path: Path) -> None:
    text = README.read_text(encoding="utf-8")
    app = App(load_settings(demo_shop=False, data_dir=tmp_path), lm=InProcessLMClient())
    missing = [spec.name for spec in app.registry.all() if f"`/{spec.name}" not in text]
    assert not missing, f"commands missing from README.md: {missing}"
