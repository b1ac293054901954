"""Telegram sending and receiving details: splitting, HTML, sources, buttons, files, DMs,
topics, mentions, attachments, typing, migrations — through real PTB and the stand-in."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest
from telegram.error import Forbidden

from adapters.telegram.sender import render
from bot.commands.registry import Arg, ArgKind, CommandContext, CommandSpec
from bot.events import (
    Attachment,
    Button,
    Citation,
    Destination,
    Outbound,
    OutboundFile,
    Platform,
)
from bot.ports import DeliveryUncertain
from bot.storage.keys import Keys, community_merchant
from tests.adapters.conftest import TgAdapterFactory, TgCommandHost
from tests.standins.telegram_api import TelegramStandIn
from tests.support.tenancy import approve

GROUP = -100777


def _sentences(n_chars: int) -> str:
    out, i = [], 0
    while sum(len(s) + 1 for s in out) < n_chars:
        out.append(f"Sentence number {i} says the tent & the stove are <great> value.")
        i += 1
    return " ".join(out)[:n_chars].rsplit(" ", 1)[0] + "."


def _command(host: TgCommandHost, name: str, result: object, *args: Arg) -> list[CommandContext]:
    """Register a test-local command that records its calls and answers `result`."""
    calls: list[CommandContext] = []

    async def handler(ctx: CommandContext) -> object:
        calls.append(ctx)
        return result(ctx) if callable(result) else result

    host.registry.register(CommandSpec(name, name, handler, args=args))  # type: ignore[arg-type]
    return calls


async def test_a_10000_character_answer_arrives_as_several_messages(
    tg_api: TelegramStandIn, tg_adapter: TgAdapterFactory, tg_host: TgCommandHost
) -> None:
    text = _sentences(10_000)
    sources = (Citation("faq", "returns", "Returns & refunds <policy>"),
               Citation("product", "TENT-2P", "Trailhead 2P Tent"))
    _command(tg_host, "long", Outbound(text=text, citations=sources))
    await tg_adapter()
    tg_api.message(GROUP, 5, "/long", message_id=500)
    await tg_api.wait_for(lambda: len(tg_api.sent_to(GROUP)) >= 3)
    await asyncio.sleep(0.3)
    parts = tg_api.sent_to(GROUP)
    assert len(parts) == 3
    assert all(len(p.text) <= 4096 for p in parts)
    assert all(p.text.endswith(".") or "Sources:" in p.text for p in parts)  # sentence cuts
    assert parts[0].reply_to == 500 and parts[1].reply_to is None
    body = " ".join(p.text for p in parts).split("\n\nSources:")[0]
    assert body.split() == text.split()  # nothing lost, nothing repeated, in order
    assert parts[-1].text.endswith("Sources: Returns & refunds <policy> · Trailhead 2P Tent")
    assert "&lt;policy&gt;" in parts[-1].raw and "<i>Sources:" in parts[-1].raw


def test_render_keeps_every_piece_within_the_limit_after_escaping() -> None:
    text = "<&> " * 3000  # escaping triples the length, Telegram counts the visible text
    chunks = render(Outbound(text=text, citations=(Citation("faq", "x", "X" * 50),)))
    assert all(c.visible <= 4096 for c in chunks)
    assert sum(c.visible for c in chunks) >= len(text.strip())


async def test_buttons_become_an_inline_keyboard_and_a_click_comes_back_as_its_action(
    tg_api: TelegramStandIn, tg_adapter: TgAdapterFactory, tg_host: TgCommandHost
) -> None:
    long_action = "/pick " + "x" * 80  # over Telegram's 64 bytes of callback data
    offer = Outbound(text="Which one?", buttons=(
        Button("Short", "/pick short"), Button("Long", long_action),
        Button("Shop", "", url="https://shop.example/tents")))
    _command(tg_host, "offer", offer)
    picks = _command(tg_host, "pick", lambda ctx: f"picked {ctx.args['what'][:5]}",
                     Arg("what", ArgKind.TEXT))
    await tg_adapter()
    tg_api.message(GROUP, 6, "/offer")
    await tg_api.wait_for(lambda: len(tg_api.sent_to(GROUP)) == 1)
    [menu] = tg_api.sent_to(GROUP)
    assert menu.reply_markup is not None
    rows = menu.reply_markup["inline_keyboard"]
    assert rows[0][0]["callback_data"] == "/pick short"
    assert rows[1][0]["callback_data"].startswith("cb:")
    assert len(rows[1][0]["callback_data"].encode()) <= 64
    assert rows[2][0]["url"] == "https://shop.example/tents"

    tg_api.callback(GROUP, 7, menu, rows[1][0]["callback_data"])
    await tg_api.wait_for(lambda: len(tg_api.sent_to(GROUP)) == 2)
    assert picks[0].args["what"] == "x" * 80 and picks[0].member_key == "telegram:7"
    assert tg_api.sent_to(GROUP)[1].text == "picked xxxxx"
    assert len(tg_api.callback_answers) == 1

    tg_api.callback(GROUP, 7, menu, "cb:unknown")  # an expired mapping: told, not run
    await tg_api.wait_for(lambda: len(tg_api.callback_answers) == 2)
    assert "expired" in tg_api.callback_answers[1]["text"]
    assert len(picks) == 1


async def test_private_answers_go_to_the_member_or_say_how_to_get_them(
    tg_api: TelegramStandIn, tg_adapter: TgAdapterFactory, tg_host: TgCommandHost
) -> None:
    _command(tg_host, "secret", Outbound(text="your code is 1234", private=True))
    await tg_adapter()
    tg_api.private(8)  # member 8 has opened a chat with the bot; member 9 has not
    tg_api.message(GROUP, 8, "/secret")
    await tg_api.wait_for(lambda: bool(tg_api.sent_to(8)))
    assert tg_api.sent_to(8)[0].text == "your code is 1234"
    tg_api.message(GROUP, 9, "/secret")
    await tg_api.wait_for(lambda: bool(tg_api.sent_to(GROUP)))
    [note] = tg_api.sent_to(GROUP)
    assert "t.me/shopkeep_bot?start=" in note.text and "1234" not in note.text


async def test_files_go_as_documents_and_images_as_photos_to_a_destination(
    tg_api: TelegramStandIn, tg_adapter: TgAdapterFactory
) -> None:
    adapter = await tg_adapter()
    tg_api.group(GROUP)
    ids = await adapter.send(Outbound(
        text="This week's export", destination=Destination(Platform.TELEGRAM, str(GROUP)),
        files=(OutboundFile("faq.csv", b"id,question\n1,hi\n", "text/csv"),
               OutboundFile("chart.png", b"\x89PNG fake", "image/png"))))
    assert len(ids) == 3
    methods = [s.method for s in tg_api.sent_to(GROUP)]
    assert methods == ["sendMessage", "sendDocument", "sendPhoto"]
    assert tg_api.sent_to(GROUP)[1].file_data == b"id,question\n1,hi\n"
    assert tg_api.sent_to(GROUP)[1].file_name == "faq.csv"


async def test_idempotency_key_posts_once(
    tg_api: TelegramStandIn, tg_adapter: TgAdapterFactory
) -> None:
    adapter = await tg_adapter()
    tg_api.group(GROUP)
    out = Outbound(text="Spring sale!", idempotency_key="campaign:spring:run1",
                   destination=Destination(Platform.TELEGRAM, str(GROUP)))
    # Telegram answered "no": nothing was posted, so a retry must post.
    tg_api.fail("sendMessage", 403, "Forbidden: bot was kicked from the supergroup chat")
    with pytest.raises(Forbidden):
        await adapter.send(out)
    ids = await adapter.send(out)
    assert ids and await adapter.send(out) == ids  # a repeat returns the proof, posts nothing
    assert [s.text for s in tg_api.sent_to(GROUP)] == ["Spring sale!"]

    # No answer (a 502 from Telegram's front): it may have been posted, and bots cannot read
    # the chat to see; this and every later attempt says so instead of posting blindly.
    other = replace(out, idempotency_key="campaign:spring:run2")
    tg_api.fail("sendMessage", 502, "Bad Gateway")
    for _ in range(2):
        with pytest.raises(DeliveryUncertain):
            await adapter.send(other)
    assert [s.text for s in tg_api.sent_to(GROUP)] == ["Spring sale!"]


async def test_forum_topics_mentions_and_replies_are_translated(
    tg_api: TelegramStandIn, tg_adapter: TgAdapterFactory, tg_host: TgCommandHost
) -> None:
    _command(tg_host, "where", lambda ctx: f"topic {ctx.inbound.community.thread_id}")
    await tg_adapter()
    tg_api.group(GROUP, forum=True)
    tg_api.message(GROUP, 10, "/where", thread_id=55)
    await tg_api.wait_for(lambda: bool(tg_api.sent_to(GROUP)))
    [answer] = tg_api.sent_to(GROUP)
    assert answer.thread_id == 55 and answer.text == "topic 55"

    tg_api.message(GROUP, 10, "@shopkeep_bot do you ship to Norway?", thread_id=55)
    tg_api.message(GROUP, 10, "thanks!", reply_to=answer, thread_id=55)
    tg_api.message(GROUP, 10, "just chatting", thread_id=55, reply_to=55)  # topic root
    tg_api.message(GROUP, 10, "fixed typo", edited=True)
    await tg_api.wait_for(lambda: len(tg_host.seen) == 5)
    mention, reply, chatter, edited = tg_host.seen[1:]
    assert mention.mentions_bot and mention.text == "do you ship to Norway?"
    assert mention.community is not None and mention.community.channel_key == \
        f"telegram:{GROUP}:55"
    assert reply.reply_to_bot and not reply.mentions_bot
    assert not chatter.reply_to_bot and not chatter.mentions_bot
    assert edited.extras["edited"] and edited.text == "fixed typo"


async def test_a_document_sent_with_a_command_is_downloaded_as_an_attachment(
    tg_api: TelegramStandIn, tg_adapter: TgAdapterFactory, tg_host: TgCommandHost
) -> None:
    got = _command(tg_host, "import", "imported", Arg("file", ArgKind.ATTACHMENT))
    await tg_adapter()
    tg_api.message(GROUP, 2, "/import", document=("catalog.csv", b"sku,name\nA,Tent\n"))
    await tg_api.wait_for(lambda: bool(tg_api.sent_to(GROUP)))
    attachment = got[0].args["file"]
    assert isinstance(attachment, Attachment)
    assert attachment.filename == "catalog.csv" and attachment.data == b"sku,name\nA,Tent\n"
    assert tg_api.calls["getFile"] == 1


async def test_typing_is_shown_while_a_slow_answer_is_prepared(
    tg_api: TelegramStandIn, tg_adapter: TgAdapterFactory, tg_host: TgCommandHost
) -> None:
    async def slow(ctx: CommandContext) -> str:
        await asyncio.sleep(1.0)
        return "done thinking"

    tg_host.registry.register(CommandSpec("slow", "slow", slow, slow=True))
    await tg_adapter()
    tg_api.message(GROUP, 3, "/slow")
    await tg_api.wait_for(lambda: bool(tg_api.sent_to(GROUP)))
    assert (GROUP, "typing") in tg_api.chat_actions
    tg_api.message(GROUP, 3, "/help")  # quick: no indicator
    await tg_api.wait_for(lambda: len(tg_api.sent_to(GROUP)) == 2)
    assert len(tg_api.chat_actions) == 1


async def test_a_group_that_becomes_a_supergroup_keeps_its_merchant_and_help_channels(
    tg_api: TelegramStandIn, tg_adapter: TgAdapterFactory, tg_host: TgCommandHost
) -> None:
    redis = tg_host.redis
    await approve(redis, "telegram:-42")
    await redis.sadd(Keys("default").help_channels(), "telegram:-42")
    await tg_adapter()
    tg_api.migrate(-42, -100042, user_id=1)
    await tg_api.wait_for(lambda: bool(tg_api.calls["getUpdates"] >= 2))
    for _ in range(50):
        if await redis.get(community_merchant("telegram:-100042")):
            break
        await asyncio.sleep(0.05)
    assert await redis.get(community_merchant("telegram:-100042")) == "default"
    assert await redis.smembers(Keys("default").help_channels()) == {"telegram:-100042"}
    # The approval moved with it: the old id serves nobody, the supergroup is listed.
    assert await redis.get(community_merchant("telegram:-42")) is None
    listed = await redis.smembers(Keys("default").communities())
    assert "telegram:-100042" in listed and "telegram:-42" not in listed
    tg_api.set_admin(-100042, 5, "administrator")
    tg_api.message(-100042, 5, "/helpchannel list")  # a moderator there, as before
    await tg_api.wait_for(lambda: bool(tg_api.sent_to(-100042)))
    assert "telegram:-100042" in tg_api.sent_to(-100042)[0].text


async def test_a_send_to_a_group_that_was_upgraded_goes_to_the_supergroup(
    tg_api: TelegramStandIn, tg_adapter: TgAdapterFactory
) -> None:
    adapter = await tg_adapter()
    tg_api.group(-100043)
    tg_api.fail("sendMessage", 400, "Bad Request: group chat was upgraded to a supergroup chat",
                migrate_to=-100043)
    old = Destination(Platform.TELEGRAM, "-43")
    await adapter.send(Outbound(text="first", destination=old))
    await adapter.send(Outbound(text="second", destination=old))  # remembered: no failure
    assert [s.text for s in tg_api.sent_to(-100043)] == ["first", "second"]
    assert tg_api.rejected[400] == 1
