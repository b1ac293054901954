"""The whole bot (every feature, the real model) while Redis is killed and restarted under
traffic: FAQ entries, campaigns and profile settings that were acknowledged all survive, each
message gets exactly one reply, and the bot serves normally afterwards by itself."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from adapters.console import ConsoleAdapter
from bot.app import App
from bot.campaigns.repository import CampaignRepo
from bot.events import Privilege
from bot.settings import load_settings
from lm_service.api import LMClient
from tests.faults.support import GENERIC_ERROR, STORAGE_DOWN
from tests.support.redis_server import RedisServer


@pytest.fixture
async def crashable() -> AsyncIterator[RedisServer]:
    server = RedisServer()
    await asyncio.to_thread(server.start)
    yield server
    await asyncio.to_thread(server.stop)


def _command(kind: str, n: int) -> tuple[str, Privilege, str, str]:
    """(text, role, user, what its acknowledgement starts with)."""
    if kind == "faq":
        return (f'/faq add f{n} "Do you stock item number {n}?" Yes, item {n} ships in 2 days.',
                Privilege.MODERATOR, "mod1", f"Added FAQ entry 'f{n}'")
    if kind == "campaign":
        return (f'/campaign create c{n} "every 1d" here "Spring tents are in"',
                Privilege.MODERATOR, "mod2", f"Campaign c{n} created")
    return "/optout", Privilege.MEMBER, f"member{n}", "Done: I won't learn"


async def test_acknowledged_writes_of_every_feature_survive_a_redis_crash(
        crashable: RedisServer, tmp_path: Path, lm_client: LMClient) -> None:
    console = ConsoleAdapter(interactive=False)
    app = App(load_settings(redis_url=crashable.url, data_dir=tmp_path, demo_shop=False,
                            campaign_poll_s=0.5), adapters=[console], lm=lm_client)
    await app.start()
    outcomes: dict[tuple[str, int], tuple[str, list[str]]] = {}
    stop_at = time.monotonic() + 120

    async def traffic(kind: str) -> None:
        n = 0
        while time.monotonic() < stop_at:
            text, role, user, ack = _command(kind, n)
            replies = await console.say(text, role=role, user=user)
            outcomes[(kind, n)] = (ack, [r.text for r in replies])
            n += 1
            await asyncio.sleep(0.05)

    try:
        tasks = [asyncio.create_task(traffic(k)) for k in ("faq", "campaign", "optout")]
        await asyncio.sleep(1.5)
        await asyncio.to_thread(crashable.kill)
        await asyncio.sleep(5.0)  # longer than the store's ~3 s of retries
        await asyncio.to_thread(crashable.start)
        await asyncio.sleep(2.5)
        stop_at = time.monotonic()
        await asyncio.gather(*tasks)

        assert all(len(replies) == 1 for _, replies in outcomes.values())
        acked = {key for key, (ack, replies) in outcomes.items() if replies[0].startswith(ack)}
        down = {key for key, (_, replies) in outcomes.items()
                if replies[0].startswith(STORAGE_DOWN)}
        assert acked | down == set(outcomes), [
            r for key, (_, r) in outcomes.items() if key not in acked | down][:3]
        assert not any(GENERIC_ERROR in r[0] for _, r in outcomes.values())
        assert down, "nobody was told the memory is unreachable"
        for kind in ("faq", "campaign", "optout"):  # each feature served before and after
            last = max(n for k, n in outcomes if k == kind)
            assert (kind, 0) in acked and (kind, last) in acked, kind

        keys = app.store.keys("default")
        faq_ids = await app.redis.smembers(keys.faq_ids())
        assert {f"f{n}" for k, n in acked if k == "faq"} <= faq_ids
        campaigns = set(await CampaignRepo(app.store).names("default"))
        assert {f"c{n}" for k, n in acked if k == "campaign"} <= campaigns
        opted_out = await app.redis.smembers(keys.opted_out())
        assert {f"console:member{n}" for k, n in acked if k == "optout"} <= opted_out

        # Normal service without a restart of the bot, the model included.
        answer = await console.say("Do you stock item number 0?", user="after")
        assert len(answer) == 1 and not answer[0].text.startswith(STORAGE_DOWN)
        assert "item 0" in answer[0].text or "f0" in {c.id for c in answer[0].citations}
    finally:
        stop_at = time.monotonic()
        await app.stop()
