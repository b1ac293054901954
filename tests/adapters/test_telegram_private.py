"""Private answers Telegram refuses (the member never opened a chat with the bot, or blocked
it): the member is told in the group, by a mention of them alone, and nothing private is
posted there — through real PTB and the stand-in's 403s."""

from __future__ import annotations

import pytest

from adapters.telegram import TelegramAdapter
from bot.commands.registry import CommandContext, CommandSpec
from bot.events import Destination, Outbound, OutboundFile, Platform, Privilege
from tests.adapters.conftest import TgAdapterFactory, TgCommandHost
from tests.standins.telegram_api import Sent, TelegramStandIn
from tests.support.tenancy import approve

GROUP = -100888
FAQ = "FAQ entries: shipping (Where do you ship?), returns (30 days, receipt needed)."


@pytest.fixture
async def group(tg_api: TelegramStandIn, tg_adapter: TgAdapterFactory,
                tg_host: TgCommandHost) -> TelegramAdapter:
    """A running adapter, the group GROUP where the bot serves, and two commands answered
    privately. The group is the shop's own: approved for the default merchant."""
    _private_commands(tg_host)
    await approve(tg_host.redis, f"telegram:{GROUP}")
    adapter = await tg_adapter()
    tg_api.group(GROUP)
    return adapter


def _private_commands(host: TgCommandHost) -> None:
    """A moderator's list and a member's data export, both answered privately (like /faq list
    and /mydata)."""

    async def faq_list(ctx: CommandContext) -> str:
        return FAQ

    async def mydata(ctx: CommandContext) -> Outbound:
        return Outbound(text="Everything I keep about you is in the file.",
                        files=(OutboundFile("mydata.json", b'{"email": "ann@example.com"}',
                                            "application/json"),))

    host.registry.register(CommandSpec("faq list", "List the FAQ.", faq_list,
                                       privilege=Privilege.MODERATOR, private=True))
    host.registry.register(CommandSpec("mydata", "Your data.", mydata, private=True))


def _mentions(sent: Sent, user_id: int) -> bool:
    return any(e["type"] == "text_mention" and e["user"]["id"] == user_id
               for e in sent.entities)


async def test_a_moderator_who_never_wrote_to_the_bot_is_told_in_the_group(
    tg_api: TelegramStandIn, group: TelegramAdapter
) -> None:
    tg_api.user(2, "Ada <Admin>")
    tg_api.set_admin(GROUP, 2, "administrator")
    tg_api.message(GROUP, 2, "/faq list", message_id=4001)
    await tg_api.wait_for(lambda: bool(tg_api.sent_to(GROUP)))
    [note] = tg_api.sent_to(GROUP)
    assert tg_api.rejected[403] == 1  # Telegram refused the private message first
    assert not tg_api.sent_to(2)
    assert note.reply_to == 4001
    assert note.text.startswith("Ada <Admin>, I have my answer, but I can't write to you "
                                "privately until you open a chat with me")
    assert "t.me/shopkeep_bot?start=" in note.text and "tap Start" in note.text
    assert _mentions(note, 2)  # a mention of that member (text_mention), nobody else
    assert [e["type"] for e in note.entities].count("text_mention") == 1
    assert "@all" not in note.text and "shipping" not in note.text

    # The moderator taps Start: the answer is there, without asking again, and only once.
    tg_api.message(2, 2, "/start private")
    await tg_api.wait_for(lambda: any(s.text == FAQ for s in tg_api.sent_to(2)))
    tg_api.message(2, 2, "/help")
    await tg_api.wait_for(lambda: len(tg_api.sent_to(2)) >= 3)  # held, /start, /help
    assert [s.text for s in tg_api.sent_to(2)].count(FAQ) == 1
    assert tg_api.sent_to(2)[0].text == FAQ  # what was held comes first
    # From now on the same command is answered privately at once.
    tg_api.message(GROUP, 2, "/faq list")
    await tg_api.wait_for(lambda: [s.text for s in tg_api.sent_to(2)].count(FAQ) == 2)
    assert len(tg_api.sent_to(GROUP)) == 1


async def test_a_member_who_blocked_the_bot_gets_a_note_and_no_file_in_the_group(
    tg_api: TelegramStandIn, group: TelegramAdapter
) -> None:
    tg_api.private(3)
    tg_api.block(3)  # opened a chat once, then blocked the bot
    tg_api.message(GROUP, 3, "/mydata")
    await tg_api.wait_for(lambda: bool(tg_api.sent_to(GROUP)))
    [note] = tg_api.sent_to(GROUP)
    assert note.method == "sendMessage" and _mentions(note, 3)
    assert "ann@example.com" not in note.raw and "mydata.json" not in note.text
    assert not tg_api.sent_to(3) and tg_api.rejected[403] == 1
    assert all(s.method == "sendMessage" for s in tg_api.sent)  # no document anywhere
    # Unblocked and back in the private chat: the file arrives there.
    tg_api.message(3, 3, "hello again")
    await tg_api.wait_for(lambda: any(s.method == "sendDocument" for s in tg_api.sent_to(3)))
    [document] = [s for s in tg_api.sent_to(3) if s.method == "sendDocument"]
    assert document.file_name == "mydata.json" and b"ann@example.com" in document.file_data


async def test_a_refused_refusal_is_not_lost_either(
    tg_api: TelegramStandIn, group: TelegramAdapter
) -> None:
    # The router answers "for moderators only" privately; that too must reach the member.
    tg_api.message(GROUP, 5, "/faq list")
    await tg_api.wait_for(lambda: bool(tg_api.sent_to(GROUP)))
    [note] = tg_api.sent_to(GROUP)
    assert _mentions(note, 5) and "shipping" not in note.text
    assert "for moderators only" not in note.text  # private wording stays private


async def test_a_private_notice_falls_back_to_the_group_and_waits_for_the_member(
    tg_api: TelegramStandIn, group: TelegramAdapter
) -> None:
    # A campaign's report to the moderator who set it up in the group, who never opened a
    # chat with the bot: a note in that group, the report itself only in private, later.
    adapter = group
    report = "Campaign spring run 09:00: 39 sent, 1 uncertain (telegram:-1004013)."
    await adapter.send(Outbound(text=report, private=True, destination=Destination(
        Platform.TELEGRAM, channel_id=str(GROUP), user_id="6")))
    [note] = tg_api.sent_to(GROUP)
    assert _mentions(note, 6) and "I have a message for you" in note.text
    assert "spring" not in note.text and not tg_api.sent_to(6)
    tg_api.message(6, 6, "/start private")
    await tg_api.wait_for(lambda: any(s.text == report for s in tg_api.sent_to(6)))
    # Once the chat is open, notices go straight there.
    await adapter.send(Outbound(text="next report", private=True, destination=Destination(
        Platform.TELEGRAM, channel_id=str(GROUP), user_id="6")))
    assert tg_api.sent_to(6)[-1].text == "next report" and len(tg_api.sent_to(GROUP)) == 1
