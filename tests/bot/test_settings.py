"""Settings: environment, shopkeep.toml, and errors that read as one plain sentence."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.errors import ConfigError
from bot.settings import load_settings


def test_defaults_and_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SHOPKEEP_LM_MAX_BATCH", "8")
    monkeypatch.setenv("TELEGRAM_TOKEN", "123:abc")
    monkeypatch.setenv("SHOPKEEP_ADMIN_IDS", "telegram:1, discord:2")
    settings = load_settings()
    assert settings.redis_url is None and settings.merchant == "default"
    assert settings.lm_max_batch == 8
    assert settings.telegram_token is not None
    assert settings.telegram_token.get_secret_value() == "123:abc"
    assert settings.admin_ids == ["telegram:1", "discord:2"]


def test_a_blank_token_is_no_token(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """`DISCORD_TOKEN=` left in an env file must not make the bot log in with ""."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DISCORD_TOKEN", "")
    monkeypatch.setenv("TELEGRAM_TOKEN", "  ")
    settings = load_settings()
    assert settings.discord_token is None and settings.telegram_token is None


def test_bad_value_names_the_setting(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SHOPKEEP_LM_BACKEND", "gpu-cluster")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    message = str(caught.value)
    assert "SHOPKEEP_LM_BACKEND" in message and "'gpu-cluster'" in message
    assert "'local', 'remote' or 'openai'" in message
    assert "\n" not in message and "Traceback" not in message


def test_toml_file_and_secret_refusal(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "shopkeep.toml").write_text('merchant = "acme"\nlm_max_queue = 64\n')
    settings = load_settings()
    assert (settings.merchant, settings.lm_max_queue) == ("acme", 64)
    (tmp_path / "shopkeep.toml").write_text('discord_token = "leak"\n')
    with pytest.raises(ConfigError, match=r"must not be written in shopkeep\.toml.*DISCORD_TOKEN"):
        load_settings()
    (tmp_path / "shopkeep.toml").write_text('colour = "blue"\n')
    with pytest.raises(ConfigError, match="Unknown setting 'colour'"):
        load_settings()


def test_cli_reports_config_errors_plainly(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    from bot.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SHOPKEEP_MEMBER_MESSAGES_PER_MINUTE", "-3")
    assert main(["ask", "hello"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("shopkeep: Setting SHOPKEEP_MEMBER_MESSAGES_PER_MINUTE")
    assert "greater than or equal to 1" in err
