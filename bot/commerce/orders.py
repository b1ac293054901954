"""The order-status conversation: number and email asked for, checked against the store,
attempts limited, and nothing about an order shown unless both match."""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bot.commerce.connector import Order, StoreAuthError, StoreConnector, StoreUnavailable
from bot.commerce.intent import order_number, order_question
from bot.events import Inbound, Outbound, Platform
from bot.safety.pii import EMAIL
from bot.storage.keys import Keys
from bot.storage.store import Store

log = logging.getLogger(__name__)

WINDOW_S = 3600

ASK_NUMBER = ("I can check that for you. What's your order number? You'll find it in your "
              "order confirmation email (for example #1042).")
ASK_EMAIL = ("Thanks! To make sure order #{number} is yours: what email address did you use "
             "when you ordered? I only use it to check the order and don't keep it.")
NOT_FOUND = ("I couldn't find an order #{number} with that email address. Please check both "
             "(the number is in your confirmation email) and send them again.")
NOT_FOUND_EARLIER = ("I couldn't find an order #{number} for the email address you gave me "
                     "earlier. If you ordered with another address, send me that one.")
LIMITED = ("That's a lot of order lookups in a short time, so I've paused them for now. "
           "Please try again in an hour, or contact the team for help.")
UNAVAILABLE = ("I can't reach the store right now, so I can't check order #{number}. "
               "Please try again in a few minutes.")
GO_PRIVATE = ("Orders are private, so let's continue in direct messages: send me your order "
              "number there and I'll look it up.")
NO_EMAIL_HERE = " Please don't post your email address in the group."

# Counts one lookup against the member's and the order number's windows only if both are
# under their limits; returns 0 when allowed, else 1 (member) or 2 (order number).
_TAKE = """
for i = 1, 2 do
  if tonumber(redis.call('GET', KEYS[i]) or '0') >= tonumber(ARGV[i]) then return i end
end
for i = 1, 2 do
  redis.call('INCR', KEYS[i])
  redis.call('EXPIRE', KEYS[i], tonumber(ARGV[3]))
end
return 0
"""


@dataclass(frozen=True)
class OrderRules:
    lookups_per_hour: int = 10  # per member: store lookups, verified or not
    failures_per_hour: int = 5  # per order number: lookups that did not verify
    conversation_ttl_s: int = 900


class OrderDesk:
    """Claims order-status messages before the FAQ answers them. `connector_for(merchant)`
    is None for merchants without a store, whose messages it leaves alone."""

    def __init__(self, store: Store, connector_for: Callable[[str], StoreConnector | None],
                 rules: OrderRules) -> None:
        self.store = store
        self.connector_for = connector_for
        self.rules = rules

    async def claim(self, inbound: Inbound, merchant: str) -> list[Outbound] | None:
        """The replies when `inbound` belongs to an order conversation, else None."""
        connector = self.connector_for(merchant)
        if connector is None:
            return None
        ask = order_question(inbound.text)
        if not (inbound.is_direct or inbound.platform == Platform.CONSOLE):
            if ask is None:
                return None
            # Nothing is looked up or remembered from a group: the member is asked to write
            # privately (a DM where the platform allows it), and no order data is echoed.
            text = GO_PRIVATE + (NO_EMAIL_HERE if EMAIL.search(inbound.text) else "")
            return [_reply(inbound, text)]
        keys = self.store.keys(merchant)
        member = inbound.member.key
        state = await self._state(keys, member)
        found = EMAIL.search(inbound.text)
        email = found.group(0) if found else None
        number = order_number(inbound.text, bare=bool(state))
        if ask is None and not state:
            return None
        if ask is None and email is None and number is None:
            await self._clear(keys, member)  # the member moved on to something else
            return None
        number = number or (ask.number if ask else None) or state.get("number")
        if number is None:
            await self._save(keys, member, {"await": "number"})
            return [_reply(inbound, ASK_NUMBER)]
        verified = await self.store.redis.get(keys.order_verified(member))
        if email is None and verified is None:
            await self._save(keys, member, {"await": "email", "number": number})
            return [_reply(inbound, ASK_EMAIL.format(number=number))]
        given = self._digest(merchant, member, email) if email else str(verified)
        return [_reply(inbound, await self._lookup(connector, keys, merchant, member, number,
                                                   given, earlier=email is None))]

    async def _lookup(self, connector: StoreConnector, keys: Keys, merchant: str,
                      member: str, number: str, given: str, earlier: bool) -> str:
        window = int(time.time() // WINDOW_S)
        order_key = keys.order_attempts(f"order:{number}", window)
        allowed = int(await self.store.redis.eval(
            _TAKE, 2, keys.order_attempts(f"member:{member}", window), order_key,
            self.rules.lookups_per_hour, self.rules.failures_per_hour, WINDOW_S * 2))
        if allowed != 0:
            log.warning("order lookups paused for %s (%s limit)", member,
                        "member" if allowed == 1 else "order number")
            await self._clear(keys, member)
            return LIMITED
        try:
            order = await connector.find_order(number)
        except StoreAuthError as exc:
            log.error("the %s store refused our credentials: %s", connector.kind, exc)
            return UNAVAILABLE.format(number=number)
        except StoreUnavailable as exc:
            log.warning("the %s store is unavailable: %s", connector.kind, exc)
            return UNAVAILABLE.format(number=number)
        if order is None or not order.email.strip() or not hmac.compare_digest(
                self._digest(merchant, member, order.email), given):
            # A wrong email and an unknown order read the same: no oracle for either.
            log.info("order lookup by %s not verified", member)
            await self._save(keys, member, {"await": "email", "number": number})
            return (NOT_FOUND_EARLIER if earlier else NOT_FOUND).format(number=number)
        log.info("order lookup by %s verified", member)
        async with self.store.redis.pipeline(transaction=True) as pipe:
            pipe.decr(order_key)  # the owner's own lookups never lock their order
            pipe.set(keys.order_verified(member), given, ex=self.rules.conversation_ttl_s)
            pipe.delete(keys.order_conversation(member))
            await pipe.execute()
        return render_order(order)

    async def forget_member(self, merchant: str, member_key: str, pseudonym: str) -> None:
        """/forgetme: the conversation and the verified email go at once."""
        keys = self.store.keys(merchant)
        await self.store.redis.delete(keys.order_conversation(member_key),
                                      keys.order_verified(member_key))

    @staticmethod
    def _digest(merchant: str, member: str, email: str) -> str:
        """What is kept of a verified email: a hash keyed by merchant and member, never the
        address (and only for the conversation's TTL)."""
        key = f"{merchant}:{member}".encode()
        return hmac.new(key, email.strip().lower().encode(), hashlib.sha256).hexdigest()

    async def _state(self, keys: Keys, member: str) -> dict[str, str]:
        raw = await self.store.redis.hgetall(keys.order_conversation(member))
        return {str(k): str(v) for k, v in dict(raw).items()}

    async def _save(self, keys: Keys, member: str, state: dict[Any, Any]) -> None:
        key = keys.order_conversation(member)
        async with self.store.redis.pipeline(transaction=True) as pipe:
            pipe.delete(key)
            pipe.hset(key, mapping=state)
            pipe.expire(key, self.rules.conversation_ttl_s)
            await pipe.execute()

    async def _clear(self, keys: Keys, member: str) -> None:
        await self.store.redis.delete(keys.order_conversation(member))


def render_order(order: Order) -> str:
    """Status, items, carrier and tracking link, in a few plain lines."""
    out = [f"Order #{order.number} is {order.status}."]
    if order.lines:
        out.append("Items: " + ", ".join(f"{line.quantity} × {line.name}"
                                         for line in order.lines) + ".")
    for shipment in order.shipments:
        tracking = f"Shipped with {shipment.carrier}"
        if shipment.tracking_number:
            tracking += f", tracking number {shipment.tracking_number}"
        out.append(tracking + (f": {shipment.tracking_url}" if shipment.tracking_url else "."))
    if not order.shipments and order.status not in ("cancelled", "refunded"):
        out.append("There's no tracking number yet; you'll get one by email when it ships.")
    if order.status_url:
        out.append(f"Order page: {order.status_url}")
    return "\n".join(out)


def _reply(inbound: Inbound, text: str) -> Outbound:
    return Outbound(text=text, reply_to=inbound.message_id, private=True)


__all__ = ["OrderDesk", "OrderRules", "render_order"]
