"""A terminal chat with the bot; also the adapter the tests drive (`say` a line, read replies)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import sys
from pathlib import Path
from typing import TextIO

from bot.commands.registry import CommandSpec
from bot.events import (
    Attachment,
    CommunityRef,
    Inbound,
    MemberRef,
    Outbound,
    OutboundFile,
    Platform,
    Privilege,
)
from bot.ports import (
    Adapter,
    AdapterHost,
    Capabilities,
    InboundHandler,
    render_plain,
    save_file,
)


class ConsoleAdapter(Adapter):
    """Type as one member of one community. `interactive=False` (tests) reads no stdin.

    Files the bot sends (`/mydata`, `/digest preview`) are saved under `files_dir` (the
    data folder's `files/` in `shopkeep run`) and their paths printed; with no `files_dir`
    they are only described.
    """

    platform = Platform.CONSOLE
    capabilities = Capabilities(max_message_length=100_000, files=True)

    def __init__(self, user: str = "you", role: Privilege = Privilege.MEMBER,
                 merchant: str | None = None, interactive: bool = True,
                 out: TextIO | None = None, files_dir: Path | None = None) -> None:
        self.member = MemberRef(Platform.CONSOLE, user, user)
        self.community = CommunityRef(Platform.CONSOLE, "console", "console")
        self.role = role
        self.merchant = merchant
        self.interactive = interactive
        self.out = out if out is not None else sys.stdout
        self.files_dir = files_dir
        self.saved: list[Path] = []
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
        notes = [self._save(f) for f in outbound.files] if self.files_dir is not None else []
        self._print(outbound, notes)
        return [str(len(self.sent))]

    def _save(self, file: OutboundFile) -> str:
        assert self.files_dir is not None
        try:
            path = save_file(file, self.files_dir)
        except OSError as exc:
            return f"(file {file.filename} could not be saved: {exc.strerror or exc})"
        self.saved.append(path)
        return f"(file saved: {path}, {len(file.data)} bytes)"

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

    def _print(self, outbound: Outbound, file_notes: list[str]) -> None:
        if not self.interactive:
            return
        prefix = "(only you) " if outbound.private else ""
        if file_notes:
            outbound = dataclasses.replace(outbound, files=())
        text = "\n\n".join([render_plain(outbound), "\n".join(file_notes)]).strip()
        self.out.write(f"\nbot> {prefix}{text}\n")
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
