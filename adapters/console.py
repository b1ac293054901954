"""A terminal chat with the bot; also the adapter the tests drive (`say` a line, read replies)."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from typing import TextIO

from bot.commands.registry import CommandSpec
from bot.events import (
    Attachment,
    CommunityRef,
    Inbound,
    MemberRef,
    Outbound,
    Platform,
    Privilege,
)
from bot.ports import Adapter, AdapterHost, Capabilities, InboundHandler, render_plain


class ConsoleAdapter(Adapter):
    """Type as one member of one community. `interactive=False` (tests) reads no stdin."""

    platform = Platform.CONSOLE
    capabilities = Capabilities(max_message_length=100_000, files=True)

    def __init__(self, user: str = "you", role: Privilege = Privilege.MEMBER,
                 merchant: str | None = None, interactive: bool = True,
                 out: TextIO | None = None) -> None:
        self.member = MemberRef(Platform.CONSOLE, user, user)
        self.community = CommunityRef(Platform.CONSOLE, "console", "console")
        self.role = role
        self.merchant = merchant
        self.interactive = interactive
        self.out = out if out is not None else sys.stdout
        self.sent: list[Outbound] = []
        self.commands: list[CommandSpec] = []
        self._handler: InboundHandler | None = None
        self._loop_task: asyncio.Task[None] | None = None
        self.closed = asyncio.Event()

    async def start(self, host: AdapterHost) -> None:
        self._handler = host.handle
        self.commands = list(host.commands)
        if self.interactive:
            self._loop_task = asyncio.create_task(self._read_loop())

    async def stop(self) -> None:
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
        self.closed.set()

    async def send(self, outbound: Outbound) -> list[str]:
        self.sent.append(outbound)
        self._print(outbound)
        return [str(len(self.sent))]

    async def say(self, text: str, attachments: tuple[Attachment, ...] = (),
                  role: Privilege | None = None, user: str | None = None) -> list[Outbound]:
        """Send `text` as the console member; returns (and records) the bot's replies."""
        if self._handler is None:
            raise RuntimeError("the console adapter has not been started")
        member = self.member if user is None else MemberRef(Platform.CONSOLE, user, user)
        inbound = Inbound(
            platform=Platform.CONSOLE, member=member, text=text, community=self.community,
            privilege=self.role if role is None else role, mentions_bot=True,
            attachments=attachments, merchant=self.merchant,
        )
        replies = await self._handler(inbound)
        for reply in replies:
            await self.send(reply)
        return replies

    def _print(self, outbound: Outbound) -> None:
        if not self.interactive:
            return
        prefix = "(only you) " if outbound.private else ""
        self.out.write(f"\nbot> {prefix}{render_plain(outbound)}\n")
        self.out.flush()

    async def _read_loop(self) -> None:
        self.out.write(f"Talking as {self.member.user_id} ({self.role.name.lower()}). "
                       "Type /help for commands, Ctrl-D or /quit to leave.\n")
        try:
            while True:
                self.out.write("\nyou> ")
                self.out.flush()
                line = await asyncio.to_thread(sys.stdin.readline)
                if not line:
                    break
                text = line.strip()
                if text in ("/quit", "/exit"):
                    break
                if text:
                    await self.say(text[:50_000])
        finally:
            self.closed.set()
