"""The order desk on the test Redis against the WooCommerce stand-in: a verified order
answered, a wrong email refused like an unknown order, enumeration blocked, an outage said
plainly, and nothing about the email left in Redis."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import pytest

from bot.commerce.http import RetryPolicy
from bot.commerce.orders import (
    ASK_EMAIL,
    ASK_NUMBER,
    GO_PRIVATE,
    LIMITED,
    NOT_FOUND,
    OrderDesk,
    OrderRules,
)
from bot.commerce.woocommerce import WooCommerceConnector
from bot.events import CommunityRef, Inbound, MemberRef, Platform
from bot.storage.store import Store
from tests.standins.tls import StandInTLS
from tests.standins.woocommerce_api import WooCommerceStandIn

FAST = RetryPolicy(attempts=2, backoff_s=0.05, max_wait_s=2.0, timeout_s=5.0)
EMAIL = "ann.lee@example.com"


@pytest.fixture
async def desk(store: Store, woo_api: WooCommerceStandIn,
               store_tls: StandInTLS) -> AsyncIterator[OrderDesk]:
    connector = WooCommerceConnector(woo_api.url, woo_api.key, woo_api.secret, policy=FAST,
                                     ssl_context=store_tls.client_context())
    await connector.start()
    woo_api.add_order(1042, EMAIL, "completed", items=(("Trailhead 2P Tent", 1),))
    woo_api.add_tracking(1042, "UPS", "1Z999AA1", "https://www.ups.com/track?tracknum=1Z999AA1")
    woo_api.add_order(1043, "someone.else@example.com", "processing")
    yield OrderDesk(store, lambda merchant: connector if merchant == "default" else None,
                    OrderRules(lookups_per_hour=6, failures_per_hour=3,
                               conversation_ttl_s=300))
    await connector.stop()


def dm(text: str, user: str = "ann") -> Inbound:
    return Inbound(Platform.TELEGRAM, MemberRef(Platform.TELEGRAM, user, user), text)


async def say(desk: OrderDesk, text: str, user: str = "ann") -> str | None:
    replies = await desk.claim(dm(text, user), "default")
    if replies is None:
        return None
    [reply] = replies
    assert reply.private
    return reply.text


async def test_number_then_email_gets_status_items_and_tracking(
        desk: OrderDesk, store: Store, woo_api: WooCommerceStandIn,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    assert await say(desk, "wheres my package??") == ASK_NUMBER
    assert await say(desk, "it's 1042") == ASK_EMAIL.format(number="1042")
    assert woo_api.log == []  # nothing looked up before both are known
    answer = await say(desk, f"  {EMAIL.upper()} ")
    assert answer is not None
    assert answer.startswith("Order #1042 is completed.")
    assert "1 × Trailhead 2P Tent" in answer
    assert "UPS, tracking number 1Z999AA1: https://www.ups.com/track?tracknum=1Z999AA1" in answer
    # verified for the conversation: the next question about that order needs no email
    again = await say(desk, "tracking for 1042")
    assert again is not None and again.startswith("Order #1042")
    # and nothing in Redis holds the email address or the order's details
    for key in await store.redis.keys("*"):
        dumped = str(await store.redis.dump(key))
        assert "ann.lee" not in dumped.lower() and "1Z999" not in dumped, key
    assert await store.redis.ttl(store.keys("default").order_verified("telegram:ann")) <= 300
    assert "verified" in caplog.text  # the outcome is logged; the address never is
    assert "ann.lee" not in caplog.text.lower() and "1Z999" not in caplog.text


async def test_a_wrong_email_reads_exactly_like_an_unknown_order(desk: OrderDesk) -> None:
    wrong_email = await say(desk, "order #1042 hasn't arrived, my email is bo@example.com",
                            user="bo")
    unknown_order = await say(desk, "order #7777 hasn't arrived, my email is bo@example.com",
                              user="cy")
    assert wrong_email == NOT_FOUND.format(number="1042")
    assert unknown_order == NOT_FOUND.format(number="7777")
    assert "Trailhead" not in (wrong_email or "") and "completed" not in (wrong_email or "")
    # the member can correct the email without repeating the number
    fixed = await say(desk, EMAIL, user="bo")
    assert fixed is not None and fixed.startswith("Order #1042 is completed.")


async def test_guessing_emails_for_one_order_is_stopped(
        desk: OrderDesk, woo_api: WooCommerceStandIn) -> None:
    for i in range(3):  # three members, three guesses at order 1042's email
        assert await say(desk, f"order 1042 status, guess{i}@example.com",
                         user=f"m{i}") == NOT_FOUND.format(number="1042")
    lookups = len(woo_api.requests_to("/wp-json/wc/v3/orders/1042"))
    # the fourth is refused before the store is asked — even with the right email
    assert await say(desk, f"order 1042 status, {EMAIL}", user="m4") == LIMITED
    assert len(woo_api.requests_to("/wp-json/wc/v3/orders/1042")) == lookups


async def test_one_member_walking_through_order_numbers_is_stopped(
        desk: OrderDesk, woo_api: WooCommerceStandIn) -> None:
    replies = [await say(desk, f"where is order #{2000 + i}? {EMAIL}") for i in range(8)]
    assert replies[:6] == [NOT_FOUND.format(number=str(2000 + i)) for i in range(6)]
    assert replies[6:] == [LIMITED, LIMITED]
    assert len({r.path for r in woo_api.log if "/orders/" in r.path}) == 6


async def test_the_owner_checking_repeatedly_is_never_locked_out(desk: OrderDesk) -> None:
    for _ in range(5):  # more than failures_per_hour, all verified
        answer = await say(desk, f"order 1042? {EMAIL}")
        assert answer is not None and answer.startswith("Order #1042")


async def test_a_store_outage_is_said_plainly(
        desk: OrderDesk, woo_api: WooCommerceStandIn) -> None:
    woo_api.down = True
    answer = await say(desk, f"where is my order 1042? {EMAIL}")
    assert answer == "I can't reach the store right now, so I can't check order #1042. " \
                     "Please try again in a few minutes."


async def test_a_group_is_asked_to_continue_privately_and_nothing_is_looked_up(
        desk: OrderDesk, woo_api: WooCommerceStandIn, store: Store) -> None:
    group = Inbound(Platform.TELEGRAM, MemberRef(Platform.TELEGRAM, "ann", "ann"),
                    f"@shopkeep_bot where is my order #1042? {EMAIL}",
                    community=CommunityRef(Platform.TELEGRAM, "-100", "-100"),
                    mentions_bot=True)
    [reply] = await desk.claim(group, "default") or []
    assert reply.text.startswith(GO_PRIVATE) and "email address in the group" in reply.text
    assert "1042" not in reply.text
    assert woo_api.log == [] and await store.redis.keys("*order*") == []
    chatter = Inbound(Platform.TELEGRAM, MemberRef(Platform.TELEGRAM, "ann", "ann"),
                      "do you ship to canada?",
                      community=CommunityRef(Platform.TELEGRAM, "-100", "-100"))
    assert await desk.claim(chatter, "default") is None


async def test_other_questions_and_other_merchants_are_left_to_the_faq(
        desk: OrderDesk, store: Store) -> None:
    assert await say(desk, "how do I cancel my order?") is None
    assert await say(desk, "Can I change the shipping address on my order?") is None
    assert await desk.claim(dm("where is my order?"), "other-shop") is None
    assert await say(desk, "where is my order?") == ASK_NUMBER
    assert await say(desk, "actually, do you sell stoves?") is None  # moved on
    assert await store.redis.keys("*order:conv*") == []


async def test_forgetme_erases_the_conversation(desk: OrderDesk, store: Store) -> None:
    await say(desk, f"order 1042 {EMAIL}")
    await say(desk, "order 1043")
    assert await store.redis.keys("*order:verified*") and await store.redis.keys(
        "*order:conv*")
    await desk.forget_member("default", "telegram:ann", "x")
    assert await store.redis.keys("*order:verified*") == []
    assert await store.redis.keys("*order:conv*") == []
