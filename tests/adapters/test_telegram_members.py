"""Telegram joins, leaves and invite links end to end: real PTB over HTTP to the stand-in,
`chat_member` updates and service messages into the core, `/invite` through
`createChatInviteLink`."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from telegram import ChatMemberUpdated

from adapters.telegram import TelegramAdapter
from adapters.telegram.members import change_from_update
from bot.events import CommunityRef, MembershipChange, Platform
from bot.growth import GrowthFeature
from bot.storage.keys import Keys
from lm_service.api import LMClient
from tests.adapters.conftest import TgAdapterFactory, TgCommandHost
from tests.standins.telegram_api import TelegramStandIn
from tests.support.harness import running_app
from tests.support.redis_server import free_port

GROUP = -100777
M = "default"
WAIT_S = 10.0


class MembershipHost(TgCommandHost):
    """The command path plus `membership`, recording every change (`fail_first`: the first
    one raises, as a core that could not record it would)."""

    def __init__(self, base: TgCommandHost, fail_first: bool = False) -> None:
        super().__init__(base.store)
        self.changes: list[MembershipChange] = []
        self.fail_first = fail_first

    async def membership(self, change: MembershipChange) -> None:
        if self.fail_first:
            self.fail_first = False
            raise ConnectionError("redis went away")
        self.changes.append(change)


async def _until(check: Callable[[], Awaitable[bool]], what: str) -> None:
    """Poll `check` every 50 ms; fail the test after `WAIT_S` seconds."""
    deadline = asyncio.get_running_loop().time() + WAIT_S
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def _polling(api: TelegramStandIn) -> None:
    """Until the adapter's first getUpdates told the stand-in which updates it wants."""
    await api.wait_for(lambda: api.calls["getUpdates"] >= 1)


async def _drain(api: TelegramStandIn, chat: int) -> None:
    """Updates of one chat are handled in order: once a `/help` sent now is answered, every
    update queued before it in that chat has been handled."""
    before = len(api.sent_to(chat))
    api.message(chat, 4242_0, "/help")
    await api.wait_for(lambda: len(api.sent_to(chat)) > before)


def _growth(app: object) -> GrowthFeature:
    return next(f for f in app.features if isinstance(f, GrowthFeature))  # type: ignore[attr-defined]


# The whole app: /invite → createChatInviteLink → join through it → pending → leave ------


async def test_a_join_through_an_invite_link_made_by_invite_is_a_pending_referral_until_left(
        tg_api: TelegramStandIn, redis_url: str, redis_client: aioredis.Redis, tmp_path: Path,
        lm_client: LMClient) -> None:
    tg_api.group(GROUP)
    tg_api.set_admin(GROUP, 1, "creator")
    tg_api.user(1, "Alice")
    tg_api.private(1)  # /invite answers privately
    tg_api.promote_bot(GROUP)
    adapter = TelegramAdapter(tg_api.token, tg_api.base_url, poll_timeout_s=1)
    async with running_app(redis_url, tmp_path, lm_client, [adapter],
                           communities=[f"telegram:{GROUP}"]) as app:
        await _polling(tg_api)
        assert "chat_member" in tg_api.allowed_updates  # or Telegram would never send them

        tg_api.message(GROUP, 1, "/invite")
        await tg_api.wait_for(lambda: bool(tg_api.sent_to(1)))
        code = await _growth(app).referrals.code_for(M, "telegram:1")
        [request] = tg_api.invite_requests
        assert int(request["chat_id"]) == GROUP and request["name"] == f"ref_{code}"
        [link] = tg_api.invite_links
        assert link["invite_link"] in tg_api.sent_to(1)[0].text
        assert not tg_api.sent_to(GROUP)  # the link is personal: not posted in the group

        # Bob joins through Alice's link: a chat_member update (with the link) and a service
        # message (without) arrive; the referral is recorded once, for Alice.
        tg_api.user(2, "Bob")
        tg_api.join(GROUP, 2, link)
        referral = Keys(M).referral("telegram:2")
        async def recorded() -> bool:
            return bool(await redis_client.exists(referral))
        await _until(recorded, "Bob's referral")
        record = await redis_client.hgetall(referral)
        assert record["referrer"] == "telegram:1" and record["status"] == "pending"
        assert record["code"] == code

        tg_api.leave(GROUP, 2)

        async def withdrawn() -> bool:
            return await redis_client.hget(referral, "status") == "withdrawn"
        await _until(withdrawn, "the referral to be withdrawn")
        assert await redis_client.scard(Keys(M).referral_pending()) == 0


async def test_invite_falls_back_to_the_referral_code_when_telegram_refuses_a_link(
        tg_api: TelegramStandIn, redis_url: str, redis_client: aioredis.Redis, tmp_path: Path,
        lm_client: LMClient) -> None:
    tg_api.group(GROUP)
    tg_api.user(1, "Alice")
    tg_api.private(1)
    tg_api.promote_bot(GROUP)
    tg_api.fail("createChatInviteLink", 403, "Forbidden: bot was kicked from the supergroup chat")
    adapter = TelegramAdapter(tg_api.token, tg_api.base_url, poll_timeout_s=1)
    async with running_app(redis_url, tmp_path, lm_client, [adapter],
                           communities=[f"telegram:{GROUP}"]) as app:
        tg_api.message(GROUP, 1, "/invite")
        await tg_api.wait_for(lambda: bool(tg_api.sent_to(1)))
        code = await _growth(app).referrals.code_for(M, "telegram:1")
        answer = tg_api.sent_to(1)[0].text
        assert f"ref_{code}" in answer and "t.me/+" not in answer
        assert tg_api.calls["createChatInviteLink"] == 1 and not tg_api.invite_links
        assert not await redis_client.hlen(Keys(M).referral_invites())

        # Still working afterwards: the next /invite (403 gone) gets a real link.
        tg_api.message(GROUP, 1, "/invite")
        await tg_api.wait_for(lambda: len(tg_api.sent_to(1)) == 2)
        assert tg_api.invite_links[0]["invite_link"] in tg_api.sent_to(1)[1].text


# The adapter alone, with a recording host ----------------------------------------------


@pytest.fixture
def members_host(tg_host: TgCommandHost) -> MembershipHost:
    return MembershipHost(tg_host)


@pytest.mark.parametrize("service_first", [False, True])
async def test_where_the_bot_is_admin_a_join_is_reported_once_with_its_link(
        tg_api: TelegramStandIn, tg_adapter: TgAdapterFactory, members_host: MembershipHost,
        service_first: bool) -> None:
    tg_api.group(GROUP)
    tg_api.promote_bot(GROUP)
    await tg_adapter(members_host)
    await _polling(tg_api)
    link = {"invite_link": "https://t.me/+AbCdEf", "name": "ref_k3y5", "creator":
            tg_api.user(1, "Alice"), "creates_join_request": False, "is_primary": False,
            "is_revoked": False}
    tg_api.user(2, "Bob Smith")
    ids = tg_api.join(GROUP, 2, link, service_first=service_first)
    assert len(ids) == 2  # Telegram sent both: the update and the service message
    tg_api.leave(GROUP, 2, service_first=not service_first)
    await _drain(tg_api, GROUP)
    joined, left = members_host.changes
    assert joined.joined and not left.joined
    assert joined.invite == "ref_k3y5"  # the link's name, which carries the referral code
    assert joined.member.key == "telegram:2" and joined.member.display_name == "Bob Smith"
    assert joined.community == CommunityRef(Platform.TELEGRAM, str(GROUP), str(GROUP))
    assert joined.platform is Platform.TELEGRAM and joined.at > 0
    assert tg_api.calls["getChatMember"] == 0  # the my_chat_member update said it is admin


async def test_without_admin_rights_service_messages_report_joins_and_leaves(
        tg_api: TelegramStandIn, tg_adapter: TgAdapterFactory,
        members_host: MembershipHost) -> None:
    tg_api.group(GROUP)
    await tg_adapter(members_host)
    await _polling(tg_api)
    assert tg_api.join(GROUP, 5) and tg_api.leave(GROUP, 5, kicked=True)
    await _drain(tg_api, GROUP)
    assert [(c.member.key, c.joined, c.invite) for c in members_host.changes] == [
        ("telegram:5", True, None), ("telegram:5", False, None)]
    assert tg_api.calls["getChatMember"] == 1  # the bot's own status, asked once


async def test_once_the_bot_is_demoted_service_messages_report_joins_again(
        tg_api: TelegramStandIn, tg_adapter: TgAdapterFactory,
        members_host: MembershipHost) -> None:
    tg_api.group(GROUP)
    tg_api.promote_bot(GROUP)
    await tg_adapter(members_host)
    await _polling(tg_api)
    tg_api.join(GROUP, 13)  # chat_member + service message: reported once
    tg_api.demote(GROUP, tg_api.bot_id)  # my_chat_member: administrator → member
    assert len(tg_api.join(GROUP, 14)) == 1  # Telegram sends only the service message now
    await _drain(tg_api, GROUP)
    assert [c.member.key for c in members_host.changes] == ["telegram:13", "telegram:14"]


async def test_when_the_bots_status_cannot_be_read_a_seen_chat_member_update_decides(
        tg_api: TelegramStandIn, tg_adapter: TgAdapterFactory,
        members_host: MembershipHost) -> None:
    tg_api.group(GROUP)
    tg_api.promote_bot(GROUP)
    adapter = await tg_adapter(members_host)
    await _polling(tg_api)
    tg_api.join(GROUP, 15, service_message=False)
    await _drain(tg_api, GROUP)
    assert adapter._members is not None
    adapter._members._bot_admin.clear()  # as after a restart: the status must be asked for
    tg_api.fail("getChatMember", 500, times=5)
    tg_api.join(GROUP, 16, service_first=True)
    await _drain(tg_api, GROUP)
    assert [c.member.key for c in members_host.changes] == ["telegram:15", "telegram:16"]
    assert tg_api.calls["getChatMember"] == 1


async def test_an_unnamed_link_is_reported_by_its_url_and_promotions_are_no_join(
        tg_api: TelegramStandIn, tg_adapter: TgAdapterFactory,
        members_host: MembershipHost) -> None:
    tg_api.group(GROUP)
    tg_api.promote_bot(GROUP)
    await tg_adapter(members_host)
    await _polling(tg_api)
    url = "https://t.me/+Zz9Yy8"
    tg_api.join(GROUP, 6, {"invite_link": url, "creator": tg_api.user(1),
                           "creates_join_request": False, "is_primary": False,
                           "is_revoked": False}, service_message=False)
    assert tg_api.promote(GROUP, 6)  # still a member: neither a join nor a leave
    await _drain(tg_api, GROUP)
    assert [(c.member.key, c.joined, c.invite) for c in members_host.changes] == [
        ("telegram:6", True, url)]


async def test_webhook_mode_asks_for_chat_member_updates_and_reports_joins(
        tg_api: TelegramStandIn, tg_adapter: TgAdapterFactory,
        members_host: MembershipHost) -> None:
    tg_api.group(GROUP)
    tg_api.promote_bot(GROUP)
    port = free_port()
    await tg_adapter(members_host, mode="webhook", webhook_port=port,
                     webhook_url=f"http://127.0.0.1:{port}/telegram/hook",
                     webhook_listen="127.0.0.1")
    assert "chat_member" in tg_api.allowed_updates  # told to setWebhook
    tg_api.join(GROUP, 12, {"invite_link": "https://t.me/+Hook", "name": "ref_hook",
                            "creator": tg_api.user(1), "creates_join_request": False,
                            "is_primary": False, "is_revoked": False})
    await _drain(tg_api, GROUP)
    assert [(c.member.key, c.invite) for c in members_host.changes] == [
        ("telegram:12", "ref_hook")]


def _updated(old: dict[str, object], new: dict[str, object]) -> ChatMemberUpdated:
    user = {"id": 21, "is_bot": False, "first_name": "Rae", "last_name": "Stone"}
    return ChatMemberUpdated.de_json({
        "chat": {"id": GROUP, "type": "supergroup", "title": "Shop fans"},
        "from": user, "date": 1_790_000_000,
        "old_chat_member": {"user": user, **old}, "new_chat_member": {"user": user, **new},
    }, None)


_RESTRICTED = {"status": "restricted", "until_date": 0, "can_send_messages": False,
               "can_send_audios": False, "can_send_documents": False,
               "can_send_photos": False, "can_send_videos": False,
               "can_send_video_notes": False, "can_send_voice_notes": False,
               "can_send_polls": False, "can_send_other_messages": False,
               "can_add_web_page_previews": False, "can_change_info": False,
               "can_invite_users": False, "can_pin_messages": False,
               "can_manage_topics": False, "can_edit_tag": False,
               "can_react_to_messages": False}


@pytest.mark.parametrize(("old", "new", "joined"), [
    ({"status": "left"}, {"status": "member"}, True),
    ({"status": "kicked", "until_date": 0}, {"status": "member"}, True),
    ({**_RESTRICTED, "is_member": False}, {**_RESTRICTED, "is_member": True}, True),
    ({"status": "member"}, {"status": "left"}, False),
    ({"status": "member"}, {"status": "kicked", "until_date": 0}, False),
    ({**_RESTRICTED, "is_member": True}, {"status": "left"}, False),
    ({"status": "member"}, {**_RESTRICTED, "is_member": True}, None),  # muted, still in
    ({"status": "left"}, {"status": "kicked", "until_date": 0}, None),  # banned after leaving
    ({"status": "left"}, {**_RESTRICTED, "is_member": False}, None),
])
def test_a_join_is_not_a_member_before_and_a_member_after(
        old: dict[str, object], new: dict[str, object], joined: bool | None) -> None:
    change = change_from_update(_updated(old, new))
    if joined is None:
        assert change is None
    else:
        assert change is not None and change.joined is joined
        assert change.member.key == "telegram:21" and change.member.display_name == "Rae Stone"
        assert change.at == 1_790_000_000 and change.invite is None


async def test_bots_and_the_bot_itself_joining_or_leaving_are_ignored(
        tg_api: TelegramStandIn, tg_adapter: TgAdapterFactory,
        members_host: MembershipHost) -> None:
    tg_api.group(GROUP)
    tg_api.user(7, "HelperBot")["is_bot"] = True
    await tg_adapter(members_host)
    await _polling(tg_api)
    tg_api.join(GROUP, tg_api.bot_id)  # my_chat_member and a service message naming the bot
    tg_api.join(GROUP, 7)
    tg_api.leave(GROUP, 7)
    tg_api.promote_bot(GROUP)
    tg_api.join(GROUP, 7)  # now also as a chat_member update
    tg_api.join(GROUP, 8)  # a person, so the test sees that joins do get through
    await _drain(tg_api, GROUP)
    assert [(c.member.key, c.joined) for c in members_host.changes] == [("telegram:8", True)]


async def test_a_join_the_core_could_not_record_is_logged_and_the_chat_goes_on(
        tg_api: TelegramStandIn, tg_adapter: TgAdapterFactory, tg_host: TgCommandHost,
        caplog: pytest.LogCaptureFixture) -> None:
    host = MembershipHost(tg_host, fail_first=True)
    tg_api.group(GROUP)
    await tg_adapter(host)
    await _polling(tg_api)
    tg_api.join(GROUP, 9)
    tg_api.join(GROUP, 10)
    await _drain(tg_api, GROUP)  # the chat still answers
    assert [c.member.key for c in host.changes] == ["telegram:10"]
    assert "could not record telegram:9 joining" in caplog.text


async def test_create_invite_sends_the_name_and_answers_none_on_refusals(
        tg_api: TelegramStandIn, tg_adapter: TgAdapterFactory,
        members_host: MembershipHost) -> None:
    tg_api.group(GROUP)
    adapter = await tg_adapter(members_host)
    group = CommunityRef(Platform.TELEGRAM, str(GROUP), str(GROUP))
    # Not an administrator: Telegram answers 400 "not enough rights".
    assert await adapter.create_invite(group, "ref_abc") is None
    tg_api.promote_bot(GROUP, can_invite_users=False)
    assert await adapter.create_invite(group, "ref_abc") is None
    tg_api.promote_bot(GROUP)
    link = await adapter.create_invite(group, "ref_abc")
    assert link == tg_api.invite_links[0]["invite_link"] and link.startswith("https://t.me/+")
    assert tg_api.invite_links[0]["name"] == "ref_abc"
    assert int(tg_api.invite_requests[-1]["chat_id"]) == GROUP

    # Longer than Telegram's 32 characters: made without a name (its URL identifies it).
    assert await adapter.create_invite(group, "ref_" + "x" * 40) is not None
    assert "name" not in tg_api.invite_requests[-1]
    # Server errors: no link, no exception.
    tg_api.fail("createChatInviteLink", 500)
    assert await adapter.create_invite(group, "ref_abc") is None
    tg_api.fail("createChatInviteLink", 403, "Forbidden: bot is not a member of the chat")
    assert await adapter.create_invite(group, "ref_abc") is None
    # One 429 is waited out and retried.
    tg_api.fail("createChatInviteLink", 429, "Too Many Requests: retry after 1", retry_after=1)
    assert await adapter.create_invite(group, "ref_abc") is not None
    # Other platforms and non-numeric ids are not Telegram chats.
    assert await adapter.create_invite(CommunityRef(Platform.DISCORD, "1", "1"), "x") is None
    assert len(tg_api.invite_links) == 3


async def test_an_invite_that_takes_too_long_answers_none(
        tg_api: TelegramStandIn, tg_adapter: TgAdapterFactory,
        members_host: MembershipHost) -> None:
    tg_api.group(GROUP)
    tg_api.promote_bot(GROUP)
    adapter = await tg_adapter(members_host)
    assert adapter._members is not None
    adapter._members.invite_timeout_s = 0.5
    # Telegram asks for a minute's wait: the member is not kept waiting that long.
    tg_api.fail("createChatInviteLink", 429, "Too Many Requests: retry after 60",
                retry_after=60)
    group = CommunityRef(Platform.TELEGRAM, str(GROUP), str(GROUP))
    assert await asyncio.wait_for(adapter.create_invite(group, "ref_abc"), 5) is None
