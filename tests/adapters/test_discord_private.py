"""Private answers to typed commands go by DM on Discord; when Discord refuses the DM (403,
code 50007: the member takes no DMs from the server, or blocked the bot) the member is told
in the channel with a mention of them alone, and nothing private is posted there."""

from __future__ import annotations

from bot.commands.registry import CommandContext, CommandSpec
from bot.events import Destination, Outbound, OutboundFile, Platform
from tests.adapters.conftest_discord import *  # noqa: F403  (the dc_ fixtures)
from tests.adapters.conftest_discord import DiscordRig

SECRET = '{"email": "mia@example.com"}'


def _mydata(rig: DiscordRig) -> None:
    async def mydata(ctx: CommandContext) -> Outbound:
        return Outbound(text="Everything I keep about you is in the file.",
                        files=(OutboundFile("mydata.json", SECRET.encode(), "application/json"),))

    rig.host.registry.register(CommandSpec("mydata", "Your data.", mydata, private=True))


async def test_a_private_answer_goes_by_dm(dc_rig: DiscordRig) -> None:
    standin = dc_rig.standin
    _mydata(dc_rig)
    await standin.message("4", f"<@{standin.bot_id}> /mydata")
    await standin.wait_for(lambda: "dm4" in standin.channels
                           and bool(standin.messages_in(standin.channels["dm4"]["id"])))
    [answer] = standin.messages_in(standin.channels["dm4"]["id"])
    assert answer.files == ["mydata.json"]
    assert not standin.messages_in(standin.general)


async def test_a_refused_dm_becomes_a_note_that_mentions_only_that_member(
        dc_rig: DiscordRig) -> None:
    standin = dc_rig.standin
    _mydata(dc_rig)
    standin.dm_refused.add("4")
    asked = await standin.message("4", f"<@{standin.bot_id}> /mydata")
    await standin.wait_for(lambda: bool(standin.messages_in(standin.general)))
    [note] = standin.messages_in(standin.general)
    refused = [r for r in standin.requests if r[2] == 403 and r[1].endswith("/messages")]
    assert len(refused) == 1  # Discord refused the DM first
    assert not standin.messages_in(standin.channels["dm4"]["id"])
    assert note.content.startswith("<@4>, I can't send you a direct message")
    assert note.files == [] and "mia@example.com" not in note.content
    assert "file" not in note.content
    assert note.reference is not None and str(note.reference["message_id"]) == asked
    mentions = note.allowed_mentions or {}
    assert "everyone" not in mentions.get("parse", []) and "roles" not in mentions.get(
        "parse", [])


async def test_a_private_notice_goes_by_dm_or_becomes_a_note_in_its_channel(
        dc_rig: DiscordRig) -> None:
    standin, adapter = dc_rig.standin, dc_rig.adapter
    report = "Campaign spring run 09:00: 11 sent, 1 uncertain."
    notice = Outbound(text=report, private=True, destination=Destination(
        Platform.DISCORD, channel_id=standin.general, user_id="3"))
    await adapter.send(notice)
    assert [s.content for s in standin.messages_in(standin.channels["dm3"]["id"])] == [report]
    standin.dm_refused.add("3")
    await adapter.send(notice)
    [note] = standin.messages_in(standin.general)
    assert note.content.startswith("<@3>, I have a message for you")
    assert "spring" not in note.content
