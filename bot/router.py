"""Decides what an inbound message is — a command, a question for the bot, or chatter — and
sends it where it belongs. Every error ends here as a reply fit for a member."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Iterable
from dataclasses import replace
from typing import Protocol

from bot.commands.registry import CommandContext, CommandRegistry, CommandResult, CommandSpec
from bot.errors import MissingPermission, ServiceBusy, StorageUnavailable, UserFacingError
from bot.events import Inbound, Outbound, Privilege
from bot.ops.metrics import MessageMeter
from bot.safety.filters import strip_mentions
from bot.safety.pii import redact
from bot.storage.store import CONNECTION_ERRORS
from bot.tenancy import Tenancy
from lm_service.api import LMBusy, LMTimeout, LMUnavailable

log = logging.getLogger(__name__)

OBSERVERS_AT_ONCE = 32
NOT_CONNECTED = "I'm not connected to this community, so I can't help here."
MAX_MESSAGE_CHARS = 4000  # the default of SHOPKEEP_MAX_MESSAGE_CHARS


class ConversationHandler(Protocol):
    """Answers a member's message that is addressed to the bot (the reply pipeline)."""

    async def answer(self, inbound: Inbound, merchant: str) -> list[Outbound]: ...


class MessageObserver(Protocol):
    """Learns from every non-command message (profiles, analytics); must never raise."""

    async def observe(self, inbound: Inbound, merchant: str) -> None: ...


class Router:
    def __init__(
        self,
        registry: CommandRegistry,
        tenancy: Tenancy,
        conversation: ConversationHandler | None = None,
        observers: Iterable[MessageObserver] = (),
        max_message_chars: int = MAX_MESSAGE_CHARS,
    ) -> None:
        self.registry = registry
        self.max_message_chars = max_message_chars
        self.tenancy = tenancy
        self.conversation = conversation
        self.observers = list(observers)
        self._background: set[asyncio.Task[None]] = set()
        # A burst of messages starts a task per observer per message; they take turns so
        # that they never hold more Redis connections than the pool has (they queue here,
        # unbounded in time, rather than time out waiting for a connection).
        self._observing = asyncio.Semaphore(OBSERVERS_AT_ONCE)
        self.meter = MessageMeter()  # metrics, correlation id, messages in flight

    async def handle(self, inbound: Inbound) -> list[Outbound]:
        """The adapters' entry point: returns the replies to send (often none)."""
        with self.meter.track(inbound) as handling:
            too_long = _too_long(inbound, self.max_message_chars)
            if too_long is None:
                inbound = _cut(inbound, self.max_message_chars)
            replies = await self._handle(_valid_unicode(inbound), too_long)
            # Every reply, command errors that quote the member included, without pings.
            replies = [replace(r, text=strip_mentions(r.text)) for r in replies]
            self.meter.replied(handling, replies)
            return replies

    async def _handle(self, inbound: Inbound, too_long: Outbound | None) -> list[Outbound]:
        try:
            place = await self.tenancy.place(inbound)
            if place.merchant is None:
                self.meter.note("unapproved")
                return await self._unapproved(inbound)
            if too_long is not None:  # refused in an approved place only: strangers get nothing
                self.meter.note("user_error")
                return [too_long]
            merchant = place.merchant
            if inbound.command is not None or inbound.text.lstrip().startswith("/"):
                return await self._run_command(inbound, merchant, place.privilege)
            if inbound.recorded:
                self._observe(inbound, merchant)
            if self.conversation is None or not await self.tenancy.should_answer(
                inbound, merchant
            ):
                return []
            return await self.conversation.answer(inbound, merchant)
        except UserFacingError as exc:
            self.meter.note("user_error")
            return [_reply(inbound, exc.message, private=True, error="refused")]
        except CONNECTION_ERRORS:
            self.meter.note("storage_down")
            log.warning("storage unreachable while handling %s", inbound.message_id)
            return [_reply(inbound, StorageUnavailable().message, error="storage_down")]
        except LMBusy:
            self.meter.note("lm_busy")
            return [_reply(inbound, ServiceBusy().message, error="lm_busy")]
        except LMTimeout:
            self.meter.note("lm_timeout")
            return [_reply(inbound, "That took me too long to think through — please ask "
                                    "again in a moment.", error="lm_timeout")]
        except LMUnavailable:
            self.meter.note("lm_unavailable")
            log.exception("language model unavailable")
            return [_reply(inbound, "My language model is not available right now; the team "
                                    "has been told.", error="lm_unavailable")]
        except Exception:
            self.meter.note("error")
            error_id = uuid.uuid4().hex[:8]
            log.exception("error %s while handling message %s", error_id, inbound.message_id)
            return [_reply(inbound, f"Sorry, something went wrong on my side (error {error_id})."
                                    " The team can look it up.", private=True, error="error")]

    async def drain(self) -> None:
        """Wait for messages in flight and background observers to finish (shutdown, tests)."""
        await self.meter.wait_idle()
        while self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)

    async def _run_command(self, inbound: Inbound, merchant: str, privilege: Privilege,
                           approved: bool = True) -> list[Outbound]:
        if inbound.command is not None:
            spec = self.registry.get(inbound.command.name)
            if spec is None:
                spec, args = self.registry.parse_text(f"/{inbound.command.name}")
            else:
                args = self.registry.coerce(spec, inbound.command.args, inbound.attachments)
        else:
            spec, args = self.registry.parse_text(inbound.text, inbound.attachments)
        return await self._invoke(spec, args, inbound, merchant, privilege, approved)

    async def _invoke(self, spec: CommandSpec, args: dict[str, object], inbound: Inbound,
                      merchant: str, privilege: Privilege, approved: bool) -> list[Outbound]:
        if privilege < spec.privilege:
            raise MissingPermission(
                f"/{spec.name} is for {spec.privilege.name.lower()}s only. "
                "Type /help to see what you can run."
            )
        ctx = CommandContext(inbound=inbound, merchant=merchant, privilege=privilege,
                             args=dict(args), keys=self.tenancy.store.keys(merchant),
                             approved=approved)
        result = await spec.handler(ctx)
        return _normalise(result, inbound, spec.private)

    async def _unapproved(self, inbound: Inbound) -> list[Outbound]:
        """A community no merchant approved: the setup command runs (its privilege checked
        against the author's platform role there); anything else is ignored — no answer, no
        observation — except one short hint to the first admin who addresses the bot."""
        if self._before_approval(inbound):
            return await self._run_command(inbound, self.tenancy.default_merchant,
                                           inbound.privilege, approved=False)
        hint = await self.tenancy.hint(inbound)
        if hint:
            return [_reply(inbound, hint)]
        if inbound.command is not None:
            # A platform-parsed command (a Discord slash command) must be answered, or the
            # member sees it fail: a short line that only they see, never in the channel.
            return [_reply(inbound, NOT_CONNECTED, private=True)]
        return []

    def _before_approval(self, inbound: Inbound) -> bool:
        if inbound.command is not None:
            name = inbound.command.name
        elif inbound.text.lstrip().startswith("/"):
            head = inbound.text.strip()[1:].split(maxsplit=1)
            name = head[0].split("@", 1)[0].lower() if head else ""
        else:
            return False
        spec = self.registry.get(name)
        return spec is not None and spec.before_approval

    def _observe(self, inbound: Inbound, merchant: str) -> None:
        if not self.observers:
            return
        # Observers store and embed what they see: they get the text with personal data
        # (emails, phone and card numbers) already redacted, like the reply pipeline does.
        inbound = replace(inbound, text=redact(inbound.text)[0])
        for observer in self.observers:
            task = asyncio.create_task(self._safe_observe(observer, inbound, merchant))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def _safe_observe(self, observer: MessageObserver, inbound: Inbound,
                            merchant: str) -> None:
        try:
            async with self._observing:
                await observer.observe(inbound, merchant)
        except Exception:
            log.exception("observer %s failed on %s", type(observer).__name__,
                          inbound.message_id)


def _too_long(inbound: Inbound, limit: int) -> Outbound | None:
    """A command longer than `limit` characters is refused whole: cut, it could store half of
    what a moderator meant. Nothing has read it yet, so nothing changed."""
    if inbound.command is not None:
        length = sum(len(v) for v in inbound.command.args.values() if isinstance(v, str))
    elif inbound.text.lstrip().startswith("/"):
        length = len(inbound.text)
    else:
        return None
    if length <= limit:
        return None
    return _reply(inbound, f"That command is {length:,} characters long; the limit is "
                           f"{limit:,}. Nothing was changed — shorten it, or import long "
                           "texts as a file.", private=True, error="refused")


def _cut(inbound: Inbound, limit: int) -> Inbound:
    """Any other message is cut to `limit` characters (at a space where there is one near
    the end) before anything reads it: a question keeps its start, chatter its gist."""
    if len(inbound.text) <= limit:
        return inbound
    head = inbound.text[:limit]
    space = head.rfind(" ", limit - limit // 10)
    return replace(inbound, text=head[:space] if space > 0 else head)


def _valid_unicode(inbound: Inbound) -> Inbound:
    """Lone UTF-16 surrogates (JSON can carry them: "\\ud800") cannot be stored or sent;
    they become U+FFFD here, once, instead of failing deep in a handler. Pairs are joined."""
    if inbound.text.isascii() and inbound.command is None:
        return inbound

    def fix(text: str) -> str:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")

    command = inbound.command
    if command is not None:
        command = replace(command, args={k: fix(v) if isinstance(v, str) else v
                                         for k, v in command.args.items()})
    return replace(inbound, text=fix(inbound.text), command=command)


def _reply(inbound: Inbound, text: str, private: bool = False,
           error: str | None = None) -> Outbound:
    """A reply; `error` names what went wrong when the message could not be served (such a
    reply is not an answer: `shopkeep ask` reports it and exits non-zero)."""
    if error is None:
        return Outbound(text=text, reply_to=inbound.message_id, private=private)
    return Outbound(text=text, reply_to=inbound.message_id, private=private, answered=False,
                    extras={"error": error})


def _normalise(result: CommandResult, inbound: Inbound, private: bool) -> list[Outbound]:
    if result is None:
        return []
    if isinstance(result, str):
        return [_reply(inbound, result, private=private)]
    if isinstance(result, Outbound):
        result = [result]
    return [
        out if out.reply_to or out.destination else _with_reply_to(out, inbound, private)
        for out in result
    ]


def _with_reply_to(out: Outbound, inbound: Inbound, private: bool) -> Outbound:
    return replace(out, reply_to=inbound.message_id, private=out.private or private)


__all__ = ["ConversationHandler", "MessageObserver", "Privilege", "Router"]
