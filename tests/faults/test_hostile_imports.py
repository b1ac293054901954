"""Hostile files handed to the running bot: refused with the error a moderator can act on,
nothing stored changes, and other members are answered while a big file is being read."""

from __future__ import annotations

import asyncio
from pathlib import Path

from adapters.console import ConsoleAdapter
from bot.events import Attachment, Privilege
from lm_service.api import LMClient
from tests.faults.support import snapshot
from tests.support.harness import running_app

BOMB = "\n".join(
    ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    + [f"{chr(98 + n)}: &{chr(98 + n)} [" + ",".join([f"*{chr(97 + n)}"] * 9) + "]"
       for n in range(7)]
    + ["faq:", "  - id: x", "    question: *h", "    answer: y", ""]).encode()
DEEP = b"[" * 100_000 + b"]" * 100_000


def _big_faq(rows: int = 12_000) -> bytes:
    return "".join(f"- id: e{i}\n  question: \"What about item {i}?\"\n  answer: \""
                   + "A long answer. " * 20 + "\"\n" for i in range(rows)).encode()


async def test_hostile_imports_are_refused_clearly_and_change_nothing(
        redis_url: str, redis_client: object, tmp_path: Path, lm_client: LMClient) -> None:
    console = ConsoleAdapter(user="mod", role=Privilege.ADMIN, interactive=False)
    async with running_app(redis_url, tmp_path, lm_client, adapters=[console]):
        await console.say('/faq add shipping "Do you ship to Canada?" Yes, in 5 days.')
        await console.say("/persona set shop_name Trailhead")
        before = await snapshot(redis_url)
        for name, data, problem in (
            ("faq.yaml", BOMB, "not valid YAML at line 1: anchors and aliases (&name, *name) "
                               "are not accepted; write each value out in full"),
            ("faq.json", DEEP, "not valid JSON: nested more than 20 levels deep"),
            ("faq.yaml", DEEP, "not valid YAML at line 1: "),
            ("catalog.json", DEEP, "not valid JSON: nested more than 20 levels deep"),
        ):
            command = "/catalog import" if name.startswith("catalog") else "/faq import"
            [reply] = await console.say(command, attachments=(Attachment(name, data),))
            assert reply.text.startswith(f"{name}: nothing was imported, 1 problem to fix:\n"
                                         f"  {problem}"), reply.text
        assert await snapshot(redis_url) == before


async def test_members_are_answered_while_a_big_file_is_read(
        redis_url: str, redis_client: object, tmp_path: Path, lm_client: LMClient) -> None:
    """Reading 4.6 MB of YAML takes seconds of CPU; it runs in a thread, so a member's
    command is answered meanwhile (with the parse on the event loop it waited for it all)."""
    console = ConsoleAdapter(user="mod", role=Privilege.ADMIN, interactive=False)
    async with running_app(redis_url, tmp_path, lm_client, adapters=[console]):
        before = await snapshot(redis_url)
        importing = asyncio.create_task(console.say(
            "/faq import", attachments=(Attachment("faq.yaml", _big_faq()),)))
        await asyncio.sleep(0.2)  # the import has begun reading
        assert not importing.done()
        [help_reply] = await console.say("/help", user="member", role=Privilege.MEMBER)
        assert "/help" in help_reply.text
        assert not importing.done()  # still reading when the member had their answer
        [reply] = await importing
        assert "12000 rows; at most 5000 per file" in reply.text
        assert await snapshot(redis_url) == before
