"""Private answers Telegram refuses (the member never opened a chat with the bot, or blocked
it): the member is told in the group, by a mention of them alone, and nothing private is
posted there — through real PTB and the stand-in's 403s."""

from __future__ import annotations

from bot.commands.registry import CommandContext, CommandSpec
from bot.events import Outbound, OutboundFile, Privilege
from tests.adapters.conftest import TgAdapterFactory, TgCommandHost
from tests.standins.telegram_api import Sent, TelegramStandIn

GROUP = -100888
FAQ = "FAQ entries: shipping (Where do you ship?), returns (30 days, receipt needed)."


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
    tg_api: TelegramStandIn, tg_adapter: TgAdapterFactory, tg_host: TgCommandHost
) -> None:
    _private_commands(tg_host)
    await tg_adapter()
    tg_api.group(GROUP)
    tg_api.user(2, "Ada <Admin>")
    tg_api.set_admin(GROUP, 2, "administrator")
    tg_api.message(GROUP, 2, "/faq list", message_id=4001)
    await tg_api.wait_for(lambda: bool(tg_api.sent_to(GROUP)))
    [note] = tg_api.sent_to(GROUP)
    assert tg_api.rejected[403] == 1  # Telegram refused the private message first
    assert not tg_api.sent_to(2)
    assert note.reply_to == 4001
    assert note.text.startswith("Ada <Admin>, I can't write to you privately")
    assert "t.me/shopkeep_bot?start=" in note.text and "tap Start, then ask again" in note.text
    assert _mentions(note, 2)  # a mention of that member (text_mention), nobody else
    assert [e["type"] for e in note.entities].count("text_mention") == 1
    assert "@all" not in note.text and "shipping" not in note.text

    # Once the moderator has opened the chat, the same command is answered there.
    tg_api.message(2, 2, "/start private")
    tg_api.message(GROUP, 2, "/faq list")
    await tg_api.wait_for(lambda: any(s.text == FAQ for s in tg_api.sent_to(2)))
    assert len(tg_api.sent_to(GROUP)) == 1


async def test_a_member_who_blocked_the_bot_gets_a_note_and_no_file_in_the_group(
    tg_api: TelegramStandIn, tg_adapter: TgAdapterFactory, tg_host: TgCommandHost
) -> None:
    _private_commands(tg_host)
    await tg_adapter()
    tg_api.group(GROUP)
    tg_api.private(3)
    tg_api.block(3)  # opened a chat once, then blocked the bot
    tg_api.message(GROUP, 3, "/mydata")
    await tg_api.wait_for(lambda: bool(tg_api.sent_to(GROUP)))
    [note] = tg_api.sent_to(GROUP)
    assert note.method == "sendMessage" and _mentions(note, 3)
    assert "ann@example.com" not in note.raw and "mydata.json" not in note.text
    assert not tg_api.sent_to(3) and tg_api.rejected[403] == 1
    assert all(s.method == "sendMessage" for s in tg_api.sent)  # no document anywhere


async def test_a_refused_refusal_is_not_lost_either(
    tg_api: TelegramStandIn, tg_adapter: TgAdapterFactory, tg_host: TgCommandHost
) -> None:
    # The router answers "for moderators only" privately; that too must reach the member.
    _private_commands(tg_host)
    await tg_adapter()
    tg_api.group(GROUP)
    tg_api.message(GROUP, 5, "/faq list")
    await tg_api.wait_for(lambda: bool(tg_api.sent_to(GROUP)))
    [note] = tg_api.sent_to(GROUP)
    assert _mentions(note, 5) and "shipping" not in note.text
    assert "for moderators only" not in note.text  # private wording stays private
