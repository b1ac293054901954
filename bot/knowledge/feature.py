"""The knowledge feature: moderator commands, demo shop import, background FAQ phrasings."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from bot.commands.registry import CommandSpec
from bot.core import Core
from bot.knowledge.background import PhrasingWorker
from bot.knowledge.commands import KnowledgeCommands
from bot.knowledge.files import parse_catalog, parse_faq, read_file
from bot.knowledge.paraphrase import Paraphraser
from bot.knowledge.store import KnowledgeStore

log = logging.getLogger(__name__)


class KnowledgeFeature:
    def __init__(self, core: Core) -> None:
        self.core = core
        self.knowledge = KnowledgeStore(core.store, core.lm)
        self._commands = KnowledgeCommands(core.store, self.knowledge)
        self.paraphraser = Paraphraser(self.knowledge, core.settings.faq_paraphrases)
        self.phrasings = PhrasingWorker(self.paraphraser, core.settings.faq_paraphrase_delay_s)

    def commands(self) -> list[CommandSpec]:
        return self._commands.specs()

    async def start(self) -> None:
        await self.phrasings.start()

    async def stop(self) -> None:
        await self.phrasings.stop()

    async def load_demo(self, folder: Path, merchant: str) -> None:
        """Import the demo shop's faq.yaml and catalog.csv (first run)."""
        faq_path, catalog_path = folder / "faq.yaml", folder / "catalog.csv"
        if faq_path.is_file():
            entries = await asyncio.to_thread(parse_faq, read_file(faq_path), faq_path.name)
            report = await self.knowledge.import_faq(merchant, entries)
            log.info("%s", report.summary("demo FAQ"))
        if catalog_path.is_file():
            products = await asyncio.to_thread(parse_catalog, read_file(catalog_path),
                                               catalog_path.name)
            report = await self.knowledge.import_catalog(merchant, products)
            log.info("%s", report.summary("demo catalog"))
