"""Channel messages through real discord.py: mentions, splitting, no mass pings, nonces,
429s, private replies, and gateway drops resumed without losing or doubling a message."""

from __future__ import annotations

import asyncio

from bot.events import Destination, Inbound, Outbound, Platform
from tests.adapters.conftest_discord import *  # noqa: F403  (the dc_ fixtures)
from tests.adapters.conftest_discord import DiscordRig, long_text

NO_MASS_PING = {"parse": ["users"], "replied_user": False}


async def test_mentioned_command_of_4500_chars_arrives_as_three_messages(
        dc_rig: DiscordRig) -> None:
    standin = dc_rig.standin
    asked = await standin.message("4", f"<@{standin.bot_id}> /longtext")
    await standin.wait_for(lambda: len(standin.messages_in(standin.general)) == 3)
    parts = standin.messages_in(standin.general)
    assert all(len(p.content) <= 2000 for p in parts)
    assert " ".join(p.content for p in parts).split() == long_text().split()
    assert parts[0].reference is not None and str(parts[0].reference["message_id"]) == asked
    assert parts[1].reference is None and parts[2].reference is None
    assert all(p.allowed_mentions == NO_MASS_PING for p in parts)
    assert len({p.nonce for p in parts}) == 3 and all(p.nonce for p in parts)
    assert any(ch == standin.general for ch, _ in standin.typing)


async def test_everyone_in_an_answer_pings_no_one(dc_rig: DiscordRig) -> None:
    standin = dc_rig.standin
    await standin.message("4", f"<@{standin.bot_id}> /echo @everyone @here <@&{standin.role_mod}>")
    await standin.wait_for(lambda: bool(standin.messages_in(standin.general)))
    [reply] = standin.messages_in(standin.general)
    # The router's guard takes the pings out of every reply; the adapter asks Discord not to
    # ping all the same, which a text sent past the router (a campaign post) shows.
    assert reply.content.startswith("echo: everyone here") and "<@&" not in reply.content
    assert reply.allowed_mentions == NO_MASS_PING
    await dc_rig.adapter.send(Outbound(text="@everyone sale", destination=Destination(
        Platform.DISCORD, channel_id=str(standin.general))))
    post = standin.messages_in(standin.general)[-1]
    assert "@everyone" in post.content and post.allowed_mentions == NO_MASS_PING


async def test_chatter_without_mention_is_not_answered_and_shows_no_typing(
        dc_rig: DiscordRig) -> None:
    standin = dc_rig.standin
    await standin.message("4", "nice weather for camping")
    await standin.message("4", f"<@{standin.bot_id}> /echo marker")
    await standin.wait_for(lambda: bool(standin.messages_in(standin.general)))
    assert [m.content for m in standin.messages_in(standin.general)] == ["echo: marker"]
    assert len(standin.typing) == 1


async def test_rate_limited_send_waits_retry_after_then_delivers_once(
        dc_rig: DiscordRig) -> None:
    standin = dc_rig.standin
    standin.rate_limit("POST", f"/channels/{standin.general}/messages", retry_after=0.6)
    await standin.message("4", f"<@{standin.bot_id}> /echo after the limit")
    await standin.wait_for(lambda: bool(standin.messages_in(standin.general)))
    posts = [(status, at) for method, path, status, at in standin.requests
             if method == "POST" and path == f"/channels/{standin.general}/messages"]
    assert [status for status, _ in posts] == [429, 200]
    assert posts[1][1] - posts[0][1] >= 0.6
    assert [m.content for m in standin.messages_in(standin.general)] == ["echo: after the limit"]


async def test_retried_send_after_lost_response_posts_once(dc_rig: DiscordRig) -> None:
    standin = dc_rig.standin
    standin.fail_after_create("POST", f"/channels/{standin.general}/messages")
    await standin.message("4", f"<@{standin.bot_id}> /echo exactly once")
    await standin.wait_for(lambda: sum(
        1 for m, p, s, _ in standin.requests
        if m == "POST" and p == f"/channels/{standin.general}/messages" and s == 200) == 1,
        within=10)
    statuses = [s for m, p, s, _ in standin.requests
                if m == "POST" and p == f"/channels/{standin.general}/messages"]
    assert statuses == [502, 200]  # discord.py retried with the same nonce
    assert [m.content for m in standin.messages_in(standin.general)] == ["echo: exactly once"]


async def test_refusal_of_a_typed_moderator_command_goes_to_direct_messages(
        dc_rig: DiscordRig) -> None:
    standin = dc_rig.standin
    await standin.message("4", f"<@{standin.bot_id}> /persona set tone pirate")
    await standin.wait_for(lambda: bool(standin.sent))
    [refusal] = standin.sent
    assert refusal.channel_id == standin.channels["dm4"]["id"]
    assert "moderators only" in refusal.content
    assert standin.messages_in(standin.general) == []


async def test_typed_moderator_command_works_for_a_moderator(dc_rig: DiscordRig) -> None:
    standin = dc_rig.standin
    await standin.message("3", f"<@{standin.bot_id}> /persona set tone cheerful")
    await standin.wait_for(lambda: bool(standin.messages_in(standin.general)))
    assert standin.messages_in(standin.general)[0].content == "Persona tone is now: cheerful"


async def test_gateway_drop_mid_conversation_resumes_without_loss_or_double_answer(
        dc_rig: DiscordRig) -> None:
    standin = dc_rig.standin
    ping = f"<@{standin.bot_id}>"
    await standin.message("4", f"{ping} /echo one")
    await standin.wait_for(lambda: len(standin.messages_in(standin.general)) == 1)
    await standin.close_gateway(code=4000)
    # written while the bot is away: Discord keeps it for the RESUME
    await standin.message("4", f"{ping} /echo two")
    await standin.message("5", f"{ping} /echo three")
    await standin.wait_for(lambda: len(standin.messages_in(standin.general)) == 3, within=15)
    await standin.message("4", f"{ping} /echo four")
    await standin.wait_for(lambda: len(standin.messages_in(standin.general)) == 4)
    await asyncio.sleep(0.3)  # room for a duplicate to show up, if there were one
    assert [m.content for m in standin.messages_in(standin.general)] == [
        "echo: one", "echo: two", "echo: three", "echo: four"]
    assert standin.resumes == 1 and standin.identifies == 1


async def test_reconnect_request_and_invalid_session_are_recovered(dc_rig: DiscordRig) -> None:
    standin = dc_rig.standin
    ping = f"<@{standin.bot_id}>"
    await standin.send_op(7)  # RECONNECT: the bot resumes
    await standin.wait_for(lambda: standin.resumes == 1, within=15)
    await standin.message("4", f"{ping} /echo after reconnect")
    await standin.wait_for(lambda: len(standin.messages_in(standin.general)) == 1)
    await standin.send_op(9, False)  # INVALID_SESSION, not resumable: identify afresh
    await standin.wait_for(lambda: standin.identifies == 2, within=15)
    await standin.message("4", f"{ping} /echo after identify")
    await standin.wait_for(lambda: len(standin.messages_in(standin.general)) == 2, within=10)
    assert [m.content for m in standin.messages_in(standin.general)] == [
        "echo: after reconnect", "echo: after identify"]


async def test_reply_to_the_bot_counts_as_addressed(dc_rig: DiscordRig) -> None:
    standin = dc_rig.standin
    await standin.message("4", f"<@{standin.bot_id}> /echo first")
    await standin.wait_for(lambda: bool(standin.messages_in(standin.general)))
    bot_message = standin.messages_in(standin.general)[0].id
    seen: list[object] = []
    original = dc_rig.host.handle

    async def spy(inbound):  # type: ignore[no-untyped-def]
        seen.append(inbound)
        return await original(inbound)

    dc_rig.host.handle = spy  # type: ignore[method-assign]
    await standin.message("5", "and in blue?", reply_to=bot_message)
    await standin.wait_for(lambda: bool(seen))
    [inbound] = seen
    assert inbound.reply_to_bot and not inbound.mentions_bot  # type: ignore[attr-defined]
    assert inbound.text == "and in blue?"  # type: ignore[attr-defined]
    assert inbound.community.channel_id == standin.general  # type: ignore[attr-defined]


async def test_redelivered_message_is_answered_once(dc_rig: DiscordRig) -> None:
    """The reply's nonce comes from the message it answers, so handling the same event twice
    (at-least-once delivery) makes Discord return the first reply instead of a second."""
    standin = dc_rig.standin
    asked = await standin.message("4", f"<@{standin.bot_id}> /longtext")
    await standin.wait_for(lambda: len(standin.messages_in(standin.general)) == 3)
    await standin.redeliver(asked)
    await standin.wait_for(lambda: dc_rig.extra.calls == ["longtext", "longtext"])
    await standin.wait_for(lambda: sum(1 for m, p, s, _ in standin.requests if m == "POST"
                                       and p.endswith("/messages")) == 6)
    assert len(standin.messages_in(standin.general)) == 3


async def test_thread_of_a_help_channel_is_seen_as_that_channel(dc_rig: DiscordRig) -> None:
    standin = dc_rig.standin
    done = await standin.slash("3", "helpchannel add", channel_id=standin.help)
    await standin.wait_for(lambda: bool(standin.for_interaction(done)))
    seen: list[Inbound] = []
    original = dc_rig.host.handle

    async def spy(inbound: Inbound) -> list[Outbound]:
        seen.append(inbound)
        return await original(inbound)

    dc_rig.host.handle = spy  # type: ignore[method-assign]
    await standin.message("5", "does the 2P tent fit two tall people?", standin.thread)
    await standin.message("5", "thanks all", standin.thread)
    await standin.wait_for(lambda: len(seen) == 2)
    question, chatter = seen
    assert question.community is not None
    assert (question.community.channel_id, question.community.thread_id) == (
        standin.help, standin.thread)
    assert not question.mentions_bot
    tenancy = dc_rig.host.router.tenancy
    assert await tenancy.should_answer(question, "default")
    assert not await tenancy.should_answer(chatter, "default")
    assert standin.typing == []  # the core answered nothing, quickly: no typing shown


async def test_direct_message_is_addressed_and_answered_in_the_dm(dc_rig: DiscordRig) -> None:
    standin = dc_rig.standin
    await standin.message("5", "/echo hello in private", dm=True)
    dm = standin.channels["dm5"]["id"]
    await standin.wait_for(lambda: bool(standin.messages_in(dm)))
    assert standin.messages_in(dm)[0].content == "echo: hello in private"


async def test_typed_command_reads_the_attached_file(dc_rig: DiscordRig) -> None:
    standin = dc_rig.standin
    await standin.message("4", f"<@{standin.bot_id}> /upload", attachments=("catalog.csv",))
    await standin.wait_for(lambda: bool(standin.messages_in(standin.general)))
    assert standin.messages_in(standin.general)[0].content == (
        f"catalog.csv: {len(standin.attachment_bytes('catalog.csv'))} bytes, "
        "header 'sku,name', note None")
