"""The Telegram adapter: a python-telegram-bot `Application` fed by long polling (offsets kept
in Redis) or a webhook, translating updates for the core and posting its answers."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import uuid
from collections import OrderedDict
from typing import Any
from urllib.parse import urlparse

from telegram import Update
from telegram.constants import ChatAction
from telegram.error import Conflict, NetworkError, TelegramError
from telegram.ext import Application, ApplicationBuilder, ContextTypes, TypeHandler

from adapters.telegram.flood import FloodLimits, RedisFloodLimiter
from adapters.telegram.members import Membership
from adapters.telegram.menu import publish_commands
from adapters.telegram.offsets import UpdateLedger, until_redis_answers
from adapters.telegram.sender import TEXT_LIMIT, Sender
from adapters.telegram.translate import (
    AdminCache,
    CallbackActions,
    ReplyTarget,
    Translator,
)
from bot.events import CommunityRef, Inbound, Outbound, Platform
from bot.ports import Adapter, AdapterHost, Capabilities
from bot.settings import Settings

log = logging.getLogger(__name__)

_TYPING_EVERY_S = 4.5  # Telegram shows "typing…" for 5 s per chat action
_TYPING_AFTER_S = 0.4  # quick answers need no indicator
_REMEMBERED_TARGETS = 10_000


class TelegramAdapter(Adapter):
    """Long polling by default (`mode="webhook"` listens on `webhook_port` and registers
    `webhook_url`). Updates of one chat are handled in order, different chats at once."""

    platform = Platform.TELEGRAM
    capabilities = Capabilities(max_message_length=TEXT_LIMIT, buttons=True, edits=False,
                                files=True, typing_indicator=True)

    def __init__(self, token: str, api_url: str = "https://api.telegram.org/bot",
                 mode: str = "polling", webhook_url: str | None = None,
                 webhook_port: int = 8443, webhook_listen: str = "0.0.0.0",
                 limits: FloodLimits | None = None, poll_timeout_s: int = 10,
                 max_concurrent: int = 64, admin_cache_s: float = 60.0) -> None:
        if mode not in ("polling", "webhook"):
            raise ValueError(f"telegram mode must be polling or webhook, not {mode!r}")
        if mode == "webhook" and not webhook_url:
            raise ValueError("webhook mode needs SHOPKEEP_TELEGRAM_WEBHOOK_URL (the public "
                             "https address Telegram should post to)")
        self.token = token
        self.bot_id = token.split(":", 1)[0]
        self.api_url = api_url.rstrip("/")
        self.mode = mode
        self.webhook_url = webhook_url
        self.webhook_port = webhook_port
        self.webhook_listen = webhook_listen
        self.limits = limits or FloodLimits()
        self.poll_timeout_s = poll_timeout_s
        self.admin_cache_s = admin_cache_s
        self.owner = uuid.uuid4().hex[:12]  # this process, in update claims
        self._slots = asyncio.Semaphore(max_concurrent)
        self._host: AdapterHost | None = None
        self._app: Application[Any, Any, Any, Any, Any, Any] | None = None
        self._ledger: UpdateLedger | None = None
        self._translator: Translator | None = None
        self._sender: Sender | None = None
        self._members: Membership | None = None
        self.limiter: RedisFloodLimiter | None = None
        self._poll_task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._inflight: set[asyncio.Task[None]] = set()
        self._chat_locks: dict[int, asyncio.Lock] = {}
        self._chat_users: dict[int, int] = {}
        self._targets: OrderedDict[str, ReplyTarget] = OrderedDict()

    @classmethod
    def from_settings(cls, settings: Settings) -> TelegramAdapter:
        assert settings.telegram_token is not None
        return cls(settings.telegram_token.get_secret_value(), settings.telegram_api_url,
                   settings.telegram_mode, settings.telegram_webhook_url,
                   settings.telegram_webhook_port)

    @property
    def application(self) -> Application[Any, Any, Any, Any, Any, Any]:
        if self._app is None:
            raise RuntimeError("the Telegram adapter has not been started")
        return self._app

    async def start(self, host: AdapterHost) -> None:
        self._host = host
        self.limiter = RedisFloodLimiter(host.redis, self.bot_id, self.limits)
        builder = (
            ApplicationBuilder().token(self.token).base_url(self.api_url)
            .base_file_url(_file_url(self.api_url)).rate_limiter(self.limiter)
            .get_updates_read_timeout(self.poll_timeout_s + 10).job_queue(None)
        )
        if self.mode == "polling":
            builder = builder.updater(None)  # we poll ourselves, to persist the offsets
        app = builder.build()
        app.add_handler(TypeHandler(Update, self._on_update))
        app.add_error_handler(self._on_error)
        await app.initialize()
        self._app = app
        bot = app.bot
        callbacks = CallbackActions(host.redis, self.bot_id)
        self._ledger = UpdateLedger(host.redis, self.bot_id)
        self._translator = Translator(bot, AdminCache(bot, self.admin_cache_s), callbacks)
        self._sender = Sender(bot, host.redis, self.bot_id, callbacks)
        self._members = Membership(bot, host.redis, self.bot_id)
        await publish_commands(bot, host.commands)
        await app.start()
        if self.mode == "polling":
            self._stopping = asyncio.Event()
            await bot.delete_webhook()
            await self._replay_pending()
            self._poll_task = asyncio.create_task(self._poll(), name="telegram-poll")
        else:
            await self._start_webhook(app)
        log.info("Telegram adapter started as @%s (%s)", bot.username, self.mode)

    async def stop(self, drain_s: float = 30.0) -> None:
        """Stop fetching, let handlers in flight finish (up to `drain_s`), then disconnect.
        Updates cut short stay pending in Redis and are handled on the next start."""
        if self._app is None:
            return
        self._stopping.set()
        if self._poll_task is not None:
            try:
                await asyncio.wait_for(self._poll_task, self.poll_timeout_s + 15)
            except TimeoutError:
                log.warning("the Telegram poller did not stop in time")
            except Exception:
                log.exception("the Telegram poller had failed")
            self._poll_task = None
        app = self._app
        if app.updater is not None and app.updater.running:
            await app.updater.stop()
        if self._inflight:
            _, late = await asyncio.wait(list(self._inflight), timeout=drain_s)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        if app.running:
            await app.stop()
        await app.shutdown()
        self._app = None

    async def send(self, outbound: Outbound) -> list[str]:
        """Post an answer (to the message it replies to) or a message with a destination."""
        if self._sender is None:
            raise RuntimeError("the Telegram adapter has not been started")
        target = self._targets.get(outbound.reply_to) if outbound.reply_to else None
        return await self._sender.send(outbound, target)

    async def create_invite(self, community: CommunityRef, name: str) -> str | None:
        """A personal invite link (`createChatInviteLink`); None where the bot may not."""
        if self._members is None:
            return None
        return await self._members.create_invite(community, name)

    # Receiving

    async def _poll(self) -> None:
        assert self._ledger is not None
        bot = self.application.bot
        offset: int | None = None
        resumed = False
        backoff = 1.0
        while not self._stopping.is_set():
            if not resumed:  # where the last process left off (Redis may be down for now)
                try:
                    offset, resumed = await self._ledger.offset(), True
                except Exception:
                    log.exception("cannot read the update offset; retrying in %.0f s", backoff)
                    await self._pause(backoff)
                    backoff = min(backoff * 2, 30.0)
                    continue
            fetch = asyncio.ensure_future(bot.get_updates(
                offset=offset, timeout=self.poll_timeout_s, allowed_updates=Update.ALL_TYPES))
            stopping = asyncio.ensure_future(self._stopping.wait())
            await asyncio.wait({fetch, stopping}, return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            if self._stopping.is_set():
                # Whatever this last call got is unconfirmed: the next start fetches it again.
                # Cancelling httpx mid-request may be absorbed by its shielded clean-up, so
                # the call gets a moment to end, then shutdown closes its connection.
                fetch.cancel()
                fetch.add_done_callback(_ignore_outcome)
                await asyncio.wait({fetch}, timeout=1.0)
                return
            try:
                updates = fetch.result()
                backoff = 1.0
            except Conflict:
                log.error("another process polls this bot; retrying in %.0f s", backoff)
                await self._pause(backoff)
                backoff = min(backoff * 2, 30.0)
                continue
            except NetworkError as exc:  # includes TimedOut
                log.warning("getUpdates failed (%s); retrying in %.0f s", exc, backoff)
                await self._pause(backoff)
                backoff = min(backoff * 2, 30.0)
                continue
            except TelegramError as exc:  # e.g. a revoked token: say so, keep trying
                log.error("getUpdates refused (%s); retrying in %.0f s", exc, backoff)
                await self._pause(backoff)
                backoff = min(backoff * 2, 30.0)
                continue
            if not updates:
                continue
            next_offset = updates[-1].update_id + 1
            try:
                # Recorded as pending before the next getUpdates confirms them to Telegram.
                await self._ledger.received([u.to_dict() for u in updates], next_offset)
            except Exception:
                # Not recorded, so not confirmed either: the same offset fetches them again.
                log.exception("could not record Telegram updates; retrying in %.0f s", backoff)
                await self._pause(backoff)
                backoff = min(backoff * 2, 30.0)
                continue
            offset = next_offset
            for update in updates:
                self._dispatch(update)

    async def _pause(self, seconds: float) -> None:
        """Sleep between retries, but wake at once for a stop."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def _replay_pending(self) -> None:
        """Handle what a previous process received but did not finish."""
        assert self._ledger is not None
        for data in await self._ledger.pending():
            if await self._ledger.reclaim(int(data["update_id"])):
                log.info("replaying update %s left unfinished", data["update_id"])
                self._dispatch(Update.de_json(data, self.application.bot))

    def _dispatch(self, update: Update, direct: bool = False) -> None:
        task = asyncio.create_task(self._in_order(update, direct))
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)

    async def _in_order(self, update: Update, direct: bool) -> None:
        chat = update.effective_chat
        key = chat.id if chat is not None else 0
        lock = self._chat_locks.setdefault(key, asyncio.Lock())
        self._chat_users[key] = self._chat_users.get(key, 0) + 1
        try:
            async with lock, self._slots:  # one chat in order; many chats side by side
                if direct:  # webhook: PTB's handler already ran and handed it to us
                    await self._process(update)
                else:
                    await self.application.process_update(update)
        finally:
            self._chat_users[key] -= 1
            if not self._chat_users[key]:  # nobody queued for this chat: forget its lock
                del self._chat_users[key], self._chat_locks[key]

    async def _on_update(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        if self.mode == "webhook":
            # PTB feeds webhook updates one at a time; hand each to the per-chat queues so
            # that one slow answer does not hold up every other chat.
            self._dispatch(update, direct=True)
            return
        await self._process(update)

    async def _process(self, update: Update) -> None:
        ledger = self._ledger
        assert ledger is not None
        if not await until_redis_answers(lambda: ledger.claim(update.update_id, self.owner),
                                         self._stopping, "claiming an update"):
            return  # handled (or being handled) already: a redelivery
        try:
            await self._handle(update)
        except asyncio.CancelledError:
            await ledger.release(update.update_id)
            raise
        except Exception:
            # Marked done below all the same: an update that breaks the handler must not
            # be replayed forever.
            log.exception("update %s failed", update.update_id)
        await until_redis_answers(lambda: ledger.done(update.update_id), self._stopping,
                                  "finishing an update")

    async def _handle(self, update: Update) -> None:
        assert self._translator is not None and self._host is not None
        assert self._members is not None
        message = update.message
        if message is not None and message.migrate_to_chat_id:
            # The group became a supergroup with a new id; the core decides what follows it.
            old, new = message.chat.id, message.migrate_to_chat_id
            await self._host.community_moved(
                CommunityRef(Platform.TELEGRAM, str(old), str(old)),
                CommunityRef(Platform.TELEGRAM, str(new), str(new)))
            return
        if await self._members.handle(update, self._host):
            return  # a join or leave
        translated = await self._translator.inbound(update)
        if translated is None:
            return
        inbound, target = translated
        self._remember(inbound.message_id, target)
        if not target.is_group:  # a private chat is open now: what was held goes first
            await self._deliver_held(target.user_id)
        answered = asyncio.Event()
        typing = asyncio.create_task(self._typing(target, answered)) if _addressed(inbound) \
            else None
        try:
            replies = await self._host.handle(inbound)
        finally:
            answered.set()
            if typing is not None:
                await typing
        for reply in replies:
            await self.send(reply)

    async def _deliver_held(self, user_id: int) -> None:
        assert self._sender is not None
        try:
            for outbound in await self._sender.pending.take(user_id):
                await self.send(outbound)
        except Exception:  # the member's own message is still answered
            log.exception("could not deliver the private messages held for %s", user_id)

    async def _typing(self, target: ReplyTarget, answered: asyncio.Event) -> None:
        """"typing…" until `answered` (an event, not a cancel: an HTTP call may absorb it)."""
        bot = self.application.bot
        wait = _TYPING_AFTER_S
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(answered.wait(), wait)
            if answered.is_set():
                return
            with contextlib.suppress(TelegramError):
                await bot.send_chat_action(target.chat_id, ChatAction.TYPING,
                                           message_thread_id=target.thread_id)
            wait = _TYPING_EVERY_S

    def _remember(self, message_id: str, target: ReplyTarget) -> None:
        self._targets[message_id] = target
        while len(self._targets) > _REMEMBERED_TARGETS:
            self._targets.popitem(last=False)

    async def _on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        # The update's id only: its repr carries the member's words.
        update_id = update.update_id if isinstance(update, Update) else None
        log.error("Telegram handler error on update %s", update_id, exc_info=context.error)

    # Publishing and webhook

    async def _start_webhook(self, app: Application[Any, Any, Any, Any, Any, Any]) -> None:
        assert app.updater is not None and self.webhook_url is not None
        await app.updater.start_webhook(
            listen=self.webhook_listen, port=self.webhook_port,
            url_path=urlparse(self.webhook_url).path.lstrip("/"),
            webhook_url=self.webhook_url, allowed_updates=Update.ALL_TYPES,
            secret_token=webhook_secret(self.token),
        )


def webhook_secret(token: str) -> str:
    """Derived from the token so every webhook worker checks the same secret."""
    return hashlib.sha256(f"shopkeep-webhook:{token}".encode()).hexdigest()[:48]


def _ignore_outcome(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()  # retrieved, so asyncio does not warn about it


def _addressed(inbound: Inbound) -> bool:
    return (inbound.is_direct or inbound.mentions_bot or inbound.reply_to_bot
            or inbound.text.startswith("/"))


def _file_url(api_url: str) -> str:
    """`https://api.telegram.org/bot` → `https://api.telegram.org/file/bot` (PTB appends the
    token to both)."""
    if api_url.endswith("/bot"):
        return api_url[: -len("/bot")] + "/file/bot"
    return api_url.rstrip("/") + "/file/bot"
