"""Update offsets in Redis: restarts neither lose nor repeat an update; webhook mode."""

from __future__ import annotations

import asyncio
import json
from collections import Counter

import aiohttp
import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from telegram import Update

from adapters.telegram.adapter import webhook_secret
from adapters.telegram.offsets import UpdateLedger, until_redis_answers
from adapters.telegram.stored import stored_form
from bot.commands.registry import Arg, ArgKind, CommandContext, CommandSpec
from tests.adapters.conftest import TgAdapterFactory, TgCommandHost
from tests.standins.telegram_api import TelegramStandIn
from tests.support.redis_server import RedisServer, free_port

GROUPS = (-1001, -1002, -1003)


def _echo(host: TgCommandHost, gate: asyncio.Event | None = None) -> list[int]:
    """/echo n: records n and answers it; waits for `gate` when n is 13."""
    handled: list[int] = []

    async def echo(ctx: CommandContext) -> str:
        n = int(ctx.args["n"])
        if gate is not None and n == 13:
            await gate.wait()
        handled.append(n)
        return f"echo {n}"

    host.registry.register(CommandSpec("echo", "echo", echo, args=(Arg("n", ArgKind.INT),)))
    return handled


async def test_a_restart_mid_stream_processes_every_update_exactly_once(
    tg_api: TelegramStandIn, tg_adapter: TgAdapterFactory, tg_host: TgCommandHost
) -> None:
    handled = _echo(tg_host)
    for chat in GROUPS:
        tg_api.group(chat)

    async def stream() -> None:
        for n in range(60):
            tg_api.message(GROUPS[n % 3], 500 + n, f"/echo {n}")
            await asyncio.sleep(0.02)

    feeding = asyncio.create_task(stream())
    first = await tg_adapter()
    await tg_api.wait_for(lambda: len(handled) >= 15)
    await first.stop()  # while updates keep arriving
    stopped_at = len(handled)
    await asyncio.sleep(0.3)
    assert len(handled) == stopped_at  # nothing is handled while no process runs
    await tg_adapter()  # the restarted process
    await feeding
    await tg_api.wait_for(lambda: len(tg_api.sent) >= 60, timeout=20)
    await asyncio.sleep(0.5)
    assert sorted(handled) == list(range(60))  # every update once
    replies = Counter(s.text for s in tg_api.sent)
    assert set(replies.values()) == {1} and len(replies) == 60
    for i, chat in enumerate(GROUPS):  # each chat's answers in the order it asked
        assert [s.text for s in tg_api.sent_to(chat)] == [f"echo {n}" for n in range(i, 60, 3)]


async def test_an_update_cut_short_by_shutdown_is_handled_after_the_restart(
    tg_api: TelegramStandIn, tg_adapter: TgAdapterFactory, tg_host: TgCommandHost
) -> None:
    gate = asyncio.Event()
    handled = _echo(tg_host, gate)
    tg_api.group(GROUPS[0])
    first = await tg_adapter()
    for n in (12, 13, 14):
        tg_api.message(GROUPS[0], 7, f"/echo {n}")
    await tg_api.wait_for(lambda: len(handled) == 1)
    await asyncio.sleep(0.3)  # 13 waits at the gate; 14 waits behind it in the same chat
    await first.stop(drain_s=0.2)  # too short: both are given back, still pending
    assert handled == [12]
    assert await tg_host.redis.hlen("sk:_global:telegram:4242:pending") == 2

    gate.set()
    await tg_adapter()
    await tg_api.wait_for(lambda: len(tg_api.sent) == 3)
    await asyncio.sleep(0.3)
    assert handled == [12, 13, 14]
    assert [s.text for s in tg_api.sent] == ["echo 12", "echo 13", "echo 14"]
    assert await tg_host.redis.hlen("sk:_global:telegram:4242:pending") == 0


async def test_two_processes_fetching_the_same_updates_handle_each_once(
    tg_api: TelegramStandIn, tg_adapter: TgAdapterFactory, tg_host: TgCommandHost
) -> None:
    handled = _echo(tg_host)
    tg_api.group(GROUPS[0])
    await tg_adapter()
    await tg_adapter()
    for n in range(10):
        tg_api.message(GROUPS[0], 7, f"/echo {n}")
    await tg_api.wait_for(lambda: len(handled) == 10)
    await asyncio.sleep(1.5)  # both pollers have seen every update by now
    assert sorted(handled) == list(range(10))
    assert len(tg_api.sent) == 10


async def test_webhook_mode_takes_updates_posted_by_telegram_and_checks_the_secret(
    tg_api: TelegramStandIn, tg_adapter: TgAdapterFactory, tg_host: TgCommandHost
) -> None:
    handled = _echo(tg_host)
    port = free_port()
    url = f"http://127.0.0.1:{port}/telegram/hook"
    await tg_adapter(mode="webhook", webhook_url=url, webhook_port=port,
                     webhook_listen="127.0.0.1")
    assert tg_api.webhook_url == url and tg_api.webhook_secret == webhook_secret(tg_api.token)
    tg_api.group(GROUPS[0])
    tg_api.message(GROUPS[0], 7, "/echo 1")
    await tg_api.wait_for(lambda: bool(tg_api.sent))
    assert handled == [1] and tg_api.sent[0].text == "echo 1"

    forged = {"update_id": 999, "message": {"message_id": 1, "date": 0, "text": "/echo 2",
                                            "chat": {"id": GROUPS[0], "type": "supergroup"},
                                            "from": {"id": 6, "is_bot": False,
                                                     "first_name": "x"}}}
    async with aiohttp.ClientSession() as session:
        async with session.post(url, json=forged,
                                headers={"X-Telegram-Bot-Api-Secret-Token": "wrong"}) as resp:
            assert resp.status == 403
    await asyncio.sleep(0.3)
    assert handled == [1]


async def test_a_claim_while_redis_is_down_waits_for_it_instead_of_dropping_the_update() -> None:
    server = RedisServer()
    await asyncio.to_thread(server.start)
    client = aioredis.from_url(server.url, decode_responses=True, socket_connect_timeout=0.5)
    ledger = UpdateLedger(client, "bot1")
    stopping = asyncio.Event()
    try:
        await asyncio.to_thread(server.kill)
        claim = asyncio.create_task(until_redis_answers(
            lambda: ledger.claim(7, "p1"), stopping, "claiming an update"))
        await asyncio.sleep(1.5)
        assert not claim.done()  # still trying, not failed
        await asyncio.to_thread(server.start)
        assert await asyncio.wait_for(claim, 15) is True
        assert await ledger.claim(7, "p2") is False  # claimed once
        await asyncio.to_thread(server.kill)
        stopping.set()  # a stopping adapter gives up at once; the update stays pending
        with pytest.raises(RedisConnectionError):
            await asyncio.wait_for(until_redis_answers(
                lambda: ledger.done(7), stopping, "finishing an update"), 15)
    finally:
        await client.aclose()
        await asyncio.to_thread(server.stop)


async def test_a_pending_update_keeps_only_redacted_words_and_still_replays(
    tg_api: TelegramStandIn, tg_adapter: TgAdapterFactory, tg_host: TgCommandHost
) -> None:
    """The pending buffer outlives its key in the append-only file: what it holds is the
    stored form — no email, phone or card, no replied-to text — and a replay works from it."""
    gate = asyncio.Event()
    heard: list[str] = []

    async def hold(ctx: CommandContext) -> str:
        await gate.wait()
        heard.append(str(ctx.args["text"]))
        return "held"

    tg_host.registry.register(CommandSpec("hold", "hold", hold, args=(Arg("text", ArgKind.TEXT),)))
    tg_api.group(GROUPS[0])
    first = await tg_adapter()
    earlier = tg_api.message(GROUPS[0], 8, "my card is 4111 1111 1111 1111")
    tg_api.message(GROUPS[0], 7, "/hold mail jörg@müller.de or call +44 20 7946 0958",
                   reply_to=earlier, contact={"phone_number": "+442079460958",
                                              "first_name": "Jörg"})
    await tg_api.wait_for(lambda: any("/hold" in i.text for i in tg_host.seen))
    await first.stop(drain_s=0.2)  # /hold is given back, still pending
    raw = await tg_host.redis.hgetall("sk:_global:telegram:4242:pending")
    assert len(raw) == 1
    [stored] = raw.values()
    for secret in ("jörg@", "müller", "7946", "4111", "phone_number", "j\\u00f6rg"):
        assert secret not in stored
    assert "[email]" in stored and "[phone]" in stored

    gate.set()
    await tg_adapter()
    await tg_api.wait_for(lambda: bool(tg_api.sent))
    assert heard == ["mail [email] or call [phone]"]
    assert [s.text for s in tg_api.sent] == ["held"]


def test_every_kind_of_update_handling_reads_survives_its_stored_form() -> None:
    """A replay builds PTB objects from the stored form: each kind the adapter handles must
    still parse, with what the translator and the membership tracker read."""
    user = {"id": 7, "is_bot": False, "first_name": "Jörg", "username": "joerg",
            "language_code": "de"}
    chat = {"id": -1001, "type": "supergroup", "title": "Shop fans", "is_forum": True}
    message = {"message_id": 5, "date": 1_700_000_000, "chat": chat, "from": user,
               "message_thread_id": 3, "is_topic_message": True,
               "caption": "/faq import mail jörg@müller.de",
               "caption_entities": [{"type": "bot_command", "offset": 0, "length": 11}],
               "document": {"file_id": "f1", "file_unique_id": "u1", "file_name": "faq.yaml",
                            "mime_type": "text/yaml", "file_size": 10},
               "reply_to_message": {"message_id": 3, "date": 1_700_000_000, "chat": chat,
                                    "from": user, "text": "call +44 20 7946 0958"}}
    updates = [
        {"update_id": 1, "message": message},
        {"update_id": 2, "edited_message": message | {"edit_date": 1_700_000_100}},
        {"update_id": 3, "callback_query": {
            "id": "q1", "from": user, "chat_instance": "ci", "data": "cb:abc",
            "message": {"message_id": 9, "date": 1_700_000_000, "chat": chat,
                        "text": "Your order 4111 1111 1111 1111"}}},
        {"update_id": 4, "message": {"message_id": 6, "date": 1_700_000_000, "chat": chat,
                                     "from": user, "new_chat_members": [user]}},
        {"update_id": 5, "message": {"message_id": 7, "date": 1_700_000_000, "chat": chat,
                                     "from": user, "migrate_to_chat_id": -1009}},
        {"update_id": 6, "chat_member": {
            "chat": chat, "from": user, "date": 1_700_000_000,
            "old_chat_member": {"status": "left", "user": user},
            "new_chat_member": {"status": "member", "user": user},
            "invite_link": {"invite_link": "https://t.me/+x", "name": "ref_a1",
                            "creator": user, "creates_join_request": False,
                            "is_primary": False, "is_revoked": False}}},
        {"update_id": 7, "poll": {"id": "p", "question": "mail me at a@b.example?"}},
    ]
    for raw in updates:
        stored = stored_form(raw)
        text = json.dumps(stored, ensure_ascii=False)
        for secret in ("jörg@", "7946", "4111", "a@b.example", "joerg", "language_code"):
            assert secret not in text, (raw["update_id"], text)
        update = Update.de_json(stored, None)
        assert update is not None and update.update_id == raw["update_id"]
    first = Update.de_json(stored_form(updates[0]), None)
    assert first.message is not None and first.message.caption == "/faq import mail [email]"
    assert first.message.document is not None and first.message.document.file_id == "f1"
    assert first.message.reply_to_message is not None and first.message.is_topic_message
    assert first.message.caption_entities == ()  # their offsets counted the original text
    query = Update.de_json(stored_form(updates[2]), None).callback_query
    assert query is not None and query.data == "cb:abc" and query.message is not None
    joined = Update.de_json(stored_form(updates[5]), None).chat_member
    assert joined is not None and joined.invite_link is not None
    assert joined.invite_link.name == "ref_a1"
    assert Update.de_json(stored_form(updates[4]), None).message.migrate_to_chat_id == -1009
