"""`shopkeep stats` prints the same figures as /stats, as a table or JSON."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from bot.cli import main
from bot.events import Platform
from bot.growth import GrowthFeature
from tests.growth.conftest import inbound


async def test_shopkeep_stats_prints_json_and_a_table(
        growth: GrowthFeature, redis_url: str, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    now = time.time()
    for user in ("1", "2"):
        await growth.observe(inbound(Platform.TELEGRAM, user, "hello", ts=now - 60), "default")
    await growth.observe(inbound(Platform.DISCORD, "3", "yo", ts=now - 3 * 86_400), "default")
    await growth.record_answer("default", "discord", False, [], ts=now - 60)
    monkeypatch.setenv("SHOPKEEP_REDIS_URL", redis_url)
    monkeypatch.setenv("SHOPKEEP_CONFIG", "/nonexistent/shopkeep.toml")
    assert await asyncio.to_thread(main, ["stats", "--json", "--days", "7"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert figures["merchant"] == "default" and figures["days"] == 7
    assert figures["active"]["1"] == {"console": 0, "discord": 0, "telegram": 2, "all": 2}
    assert figures["active"]["7"]["all"] == 3
    assert figures["counts"]["all"]["messages"] == 3
    assert figures["counts"]["discord"]["unanswered"] == 1
    assert await asyncio.to_thread(main, ["stats"]) == 0
    table = capsys.readouterr().out
    assert table.startswith("Community stats, last 7 days")
    assert await asyncio.to_thread(main, ["stats", "--days", "0"]) == 1
    assert "--days must be between 1 and 60" in capsys.readouterr().err
