"""Telegram commands end to end: real PTB over HTTP to the stand-in, the real command path."""

from __future__ import annotations

import aiohttp
import pytest

from adapters.telegram import TelegramAdapter
from bot.commands.registry import CommandSpec
from bot.events import Platform, Privilege
from bot.persona import load_persona
from bot.settings import load_settings
from tests.adapters.conftest import TgAdapterFactory, TgCommandHost
from tests.standins.telegram_api import TelegramStandIn

GROUP = -1001234


async def test_commands_are_published_by_group_and_scope(
    tg_api: TelegramStandIn, tg_adapter: TgAdapterFactory
) -> None:
    await tg_adapter()
    everyone = {c["command"] for c in tg_api.commands["default"]}
    admins = {c["command"] for c in tg_api.commands["all_chat_administrators"]}
    assert everyone == {"help"}  # /persona and /helpchannel are for moderators
    assert admins == {"help", "persona", "helpchannel"}
    helpchannel = next(c for c in tg_api.commands["all_chat_administrators"]
                       if c["command"] == "helpchannel")
    assert "add" in helpchannel["description"] and "list" in helpchannel["description"]


async def test_help_in_a_group_answers_as_a_reply(
    tg_api: TelegramStandIn, tg_adapter: TgAdapterFactory
) -> None:
    await tg_adapter()
    tg_api.group(GROUP)
    tg_api.message(GROUP, 11, "/help@shopkeep_bot", message_id=77)
    await tg_api.wait_for(lambda: bool(tg_api.sent_to(GROUP)))
    [reply] = tg_api.sent_to(GROUP)
    assert reply.reply_to == 77
    assert "/help" in reply.text and "/persona set" not in reply.text


async def test_member_is_refused_a_moderator_command_and_an_admin_runs_it(
    tg_api: TelegramStandIn, tg_adapter: TgAdapterFactory, tg_host: TgCommandHost
) -> None:
    await tg_adapter()
    tg_api.group(GROUP)
    tg_api.set_admin(GROUP, 1, "creator")
    tg_api.set_admin(GROUP, 2, "administrator")
    tg_api.user(3, "Member")
    tg_api.private(3)

    tg_api.message(GROUP, 3, "/persona set name Sneaky")
    # A refusal is private: it goes to the member's DM, not the group.
    await tg_api.wait_for(lambda: bool(tg_api.sent_to(3)))
    assert "for moderators only" in tg_api.sent_to(3)[0].text
    assert not tg_api.sent_to(GROUP)
    assert (await load_persona(tg_host.store, "default")).name != "Sneaky"

    tg_api.message(GROUP, 2, "/persona set name Ranger")
    await tg_api.wait_for(lambda: len(tg_api.sent_to(GROUP)) == 1)
    assert "Ranger" in tg_api.sent_to(GROUP)[0].text
    assert (await load_persona(tg_host.store, "default")).name == "Ranger"

    tg_api.message(GROUP, 1, "/persona set tone dry & <terse>")
    await tg_api.wait_for(lambda: len(tg_api.sent_to(GROUP)) == 2)
    # HTML-escaped on the way out, shown as typed
    assert tg_api.sent_to(GROUP)[1].text.endswith("dry & <terse>")
    privileges = {i.member.user_id: i.privilege for i in tg_host.seen}
    assert privileges == {"3": Privilege.MEMBER, "2": Privilege.MODERATOR,
                          "1": Privilege.OWNER}
    # one getChatAdministrators for three messages: the list is cached
    assert tg_api.calls["getChatAdministrators"] == 1


async def test_configured_admin_id_may_run_moderator_commands_in_a_dm(
    tg_api: TelegramStandIn, tg_adapter: TgAdapterFactory, tg_host: TgCommandHost
) -> None:
    await tg_adapter()
    tg_api.message(999, 999, "/persona set greeting Howdy")  # telegram:999 is in admin_ids
    await tg_api.wait_for(lambda: bool(tg_api.sent_to(999)))
    assert "Howdy" in tg_api.sent_to(999)[0].text
    assert tg_host.seen[0].community is None


async def test_deep_link_start_hands_the_referral_code_to_the_core(
    tg_api: TelegramStandIn, tg_adapter: TgAdapterFactory, tg_host: TgCommandHost
) -> None:
    # /start belongs to the referral feature; a test-local one records what reached it
    got: list[tuple[str, str]] = []

    async def start(ctx) -> str:  # type: ignore[no-untyped-def]
        got.append((ctx.member_key, ctx.args["payload"]))
        return "Welcome!"

    from bot.commands.registry import Arg

    tg_host.registry.register(CommandSpec("start", "Start", start,
                                          args=(Arg("payload", required=False),)))
    await tg_adapter()
    tg_api.message(42, 42, "/start ref_abc")
    await tg_api.wait_for(lambda: bool(tg_api.sent_to(42)))
    assert got == [("telegram:42", "ref_abc")]
    assert tg_api.sent_to(42)[0].text == "Welcome!"
    assert tg_host.seen[0].platform == Platform.TELEGRAM


async def test_the_token_in_the_environment_starts_the_adapter_on_the_configured_api(
    tg_api: TelegramStandIn, tg_host: TgCommandHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TELEGRAM_TOKEN", tg_api.token)
    monkeypatch.setenv("SHOPKEEP_TELEGRAM_API_URL", tg_api.base_url)
    # (what adapters.build_adapters does when TELEGRAM_TOKEN is set; `adapters` itself is
    # shadowed by this tests/adapters package under pytest's default import mode)
    adapter = TelegramAdapter.from_settings(load_settings())
    assert adapter.mode == "polling" and adapter.api_url == tg_api.base_url
    await adapter.start(tg_host)
    try:
        tg_api.message(50, 50, "/help")
        await tg_api.wait_for(lambda: bool(tg_api.sent_to(50)))
        assert "/help" in tg_api.sent_to(50)[0].text
    finally:
        await adapter.stop()


async def test_polling_rides_out_failing_get_updates(
    tg_api: TelegramStandIn, tg_adapter: TgAdapterFactory
) -> None:
    await tg_adapter()
    tg_api.fail("getUpdates", 500, "Internal Server Error", times=2)
    tg_api.fail("getUpdates", 502, "Bad Gateway")
    tg_api.message(51, 51, "/help")
    await tg_api.wait_for(lambda: bool(tg_api.sent_to(51)), timeout=20)
    assert tg_api.rejected[500] == 2 and tg_api.rejected[502] == 1
    assert len(tg_api.sent_to(51)) == 1


async def test_the_stand_in_control_api_over_http(
    tg_api: TelegramStandIn, tg_adapter: TgAdapterFactory
) -> None:
    await tg_adapter()
    base = f"http://127.0.0.1:{tg_api.port}/_control"
    update = {"message": {"message_id": 5, "date": 0, "text": "/help",
                          "chat": {"id": 60, "type": "private", "first_name": "Ann"},
                          "from": {"id": 60, "is_bot": False, "first_name": "Ann"}}}
    tg_api.private(60)
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{base}/updates", json=update) as resp:
            assert (await resp.json())["update_id"] == 1
        await tg_api.wait_for(lambda: bool(tg_api.sent_to(60)))
        async with session.get(f"{base}/sent") as resp:
            [sent] = await resp.json()
    assert sent["chat_id"] == 60 and sent["reply_to"] == 5 and "/help" in sent["text"]
