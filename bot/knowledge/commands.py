"""Moderator commands for the knowledge: /faq add|edit|remove|list|unanswered|import and
/catalog import."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bot.commands.registry import Arg, ArgKind, CommandContext, CommandSpec
from bot.errors import UserInputError
from bot.events import Attachment, Privilege
from bot.knowledge.files import ImportFailed, parse_catalog, parse_faq
from bot.knowledge.models import FaqEntry, RowErrors, faq_from_row
from bot.knowledge.store import KnowledgeStore
from bot.replies.unanswered import UnansweredLog
from bot.storage.store import Store

EDITABLE = ("question", "answer", "url", "alternates", "tags")
MOD = Privilege.MODERATOR


class KnowledgeCommands:
    def __init__(self, store: Store, knowledge: KnowledgeStore) -> None:
        self.store = store
        self.knowledge = knowledge

    def specs(self) -> list[CommandSpec]:
        entry_id = Arg("id", ArgKind.STR, "the entry's id, e.g. returns-policy")
        replace = Arg("replace", ArgKind.BOOL, "also remove entries missing from the file",
                      required=False, default=False)
        return [
            CommandSpec("faq add", "Add an FAQ entry.", self.faq_add, privilege=MOD, slow=True,
                        args=(entry_id, Arg("question", ArgKind.STR, "the question, in quotes"),
                              Arg("answer", ArgKind.TEXT, "the answer")),
                        examples=('/faq add gift-wrap "Do you gift wrap?" Yes, for $5.',)),
            CommandSpec("faq edit", "Change one field of an FAQ entry (alternates and tags: "
                        "separate with |).", self.faq_edit, privilege=MOD, slow=True,
                        args=(entry_id, Arg("field", ArgKind.CHOICE, choices=EDITABLE),
                              Arg("value", ArgKind.TEXT, "the new value"))),
            CommandSpec("faq remove", "Remove an FAQ entry.", self.faq_remove, privilege=MOD,
                        args=(entry_id,)),
            CommandSpec("faq list", "List the FAQ entries.", self.faq_list, privilege=MOD,
                        private=True),
            CommandSpec("faq unanswered", "Questions I could not answer, newest first.",
                        self.faq_unanswered, privilege=MOD, private=True,
                        args=(Arg("count", ArgKind.INT, "how many (default 10)",
                                  required=False, default=10),)),
            CommandSpec("faq import", "Import an FAQ file (YAML, JSON or CSV).",
                        self.faq_import, privilege=MOD, slow=True,
                        args=(Arg("file", ArgKind.ATTACHMENT, "the FAQ file"), replace)),
            CommandSpec("catalog import", "Import a catalog file (CSV or JSON).",
                        self.catalog_import, privilege=MOD, slow=True,
                        args=(Arg("file", ArgKind.ATTACHMENT, "the catalog file"), replace)),
        ]

    async def faq_add(self, ctx: CommandContext) -> str:
        raw = {"id": ctx.args["id"], "question": ctx.args["question"],
               "answer": ctx.args["answer"]}
        entry = valid_entry(raw)
        if await self.knowledge.faq(ctx.merchant, entry.id) is not None:
            raise UserInputError(f"FAQ entry {entry.id!r} already exists; change it with "
                                 f"/faq edit {entry.id} <field> <value>.")
        await self.knowledge.import_faq(ctx.merchant, [entry])
        return f"Added FAQ entry {entry.id!r}: {entry.question}"

    async def faq_edit(self, ctx: CommandContext) -> str:
        current = await self._existing(ctx)
        field, value = ctx.args["field"], str(ctx.args["value"]).strip()
        raw = current.as_record()
        raw[field] = value
        entry = valid_entry(raw)
        await self.knowledge.import_faq(ctx.merchant, [entry])
        return f"FAQ entry {entry.id!r}: {field} updated."

    async def faq_remove(self, ctx: CommandContext) -> str:
        current = await self._existing(ctx)
        await self.knowledge.remove_faq(ctx.merchant, current.id)
        return f"Removed FAQ entry {current.id!r}."

    async def faq_list(self, ctx: CommandContext) -> str:
        entries = await self.knowledge.faq_entries(ctx.merchant)
        if not entries:
            return "No FAQ entries yet. Add one with /faq add or import a file."
        return f"{len(entries)} FAQ entries:\n" + "\n".join(
            f"• {e.id} — {e.question}" for e in entries)

    async def faq_unanswered(self, ctx: CommandContext) -> str:
        count = int(ctx.args.get("count") or 10)
        if not 1 <= count <= 100:
            raise UserInputError("/faq unanswered: count must be between 1 and 100.")
        items = await UnansweredLog(self.store.redis).latest(ctx.keys, count)
        if not items:
            return "No unanswered questions logged."
        now = time.time()
        return "Unanswered questions, newest first:\n" + "\n".join(
            f"• {_ago(now - i.ts)} ago — {i.question}" for i in items)

    async def faq_import(self, ctx: CommandContext) -> str:
        file: Attachment = ctx.args["file"]
        # Parsing is CPU work on a moderator's file: off the event loop, so members' answers
        # do not wait for it (bot.parsing bounds its time and size).
        entries = await asyncio.to_thread(parse_faq, file.data, file.filename)
        report = await self.knowledge.import_faq(ctx.merchant, entries,
                                                 replace=bool(ctx.args.get("replace")))
        return report.summary(f"FAQ from {file.filename}")

    async def catalog_import(self, ctx: CommandContext) -> str:
        file: Attachment = ctx.args["file"]
        products = await asyncio.to_thread(parse_catalog, file.data, file.filename)
        report = await self.knowledge.import_catalog(ctx.merchant, products,
                                                     replace=bool(ctx.args.get("replace")))
        return report.summary(f"Catalog from {file.filename}")

    async def _existing(self, ctx: CommandContext) -> FaqEntry:
        entry = await self.knowledge.faq(ctx.merchant, str(ctx.args["id"]))
        if entry is None:
            raise UserInputError(f"There is no FAQ entry {ctx.args['id']!r}. See /faq list.")
        return entry


def valid_entry(raw: dict[str, Any]) -> FaqEntry:
    """One FAQ entry checked like an import row (the commands and the dashboard's form).

    Raises:
        UserInputError: every problem, in one sentence.
    """
    errors = RowErrors()
    entry = faq_from_row(raw, 1, errors)
    if entry is None:
        raise UserInputError("; ".join(m.removeprefix("row 1: ") for m in errors.messages))
    return entry


def _ago(seconds: float) -> str:
    if seconds < 90:
        return f"{int(seconds)}s"
    if seconds < 5400:
        return f"{int(seconds // 60)} min"
    if seconds < 172800:
        return f"{int(seconds // 3600)} h"
    return f"{int(seconds // 86400)} days"


__all__ = ["ImportFailed", "KnowledgeCommands"]
