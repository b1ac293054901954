"""Renders the reply prompt from prompts/reply.*.j2 with the persona and retrieved passages."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import jinja2

from bot.knowledge.models import FaqEntry, Product
from bot.knowledge.retrieval import Hit
from bot.persona import Persona
from bot.replies.memory import Turn
from lm_service.api import ChatMessage

PROMPTS_DIR = Path(__file__).resolve().parents[2] / "prompts"


@dataclass(frozen=True)
class Passage:
    title: str
    text: str


def passage(hit: Hit) -> Passage:
    """What the model reads about one source: an FAQ answer, or a product's facts."""
    record = hit.record
    if isinstance(record, FaqEntry):
        return Passage(record.question, record.answer + (f" ({record.url})" if record.url else ""))
    assert isinstance(record, Product)
    stock = "in stock" if record.in_stock else "out of stock"
    link = f" {record.url}" if record.url else ""
    return Passage(record.name, f"{record.price_text()}, {stock}. {record.description}{link}")


class PromptRenderer:
    def __init__(self, folder: Path = PROMPTS_DIR) -> None:
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(folder), undefined=jinja2.StrictUndefined,
            autoescape=False, keep_trailing_newline=False, trim_blocks=True,
        )
        self._system = self.env.get_template("reply.system.j2")
        self._user = self.env.get_template("reply.user.j2")

    def system(self, persona: Persona) -> str:
        return self._system.render(persona=persona).strip()

    def messages(self, persona: Persona, passages: list[Passage], question: str,
                 history: list[Turn]) -> tuple[ChatMessage, ...]:
        out = [ChatMessage("system", self.system(persona))]
        out.extend(ChatMessage(t.role, t.text) for t in history)
        out.append(ChatMessage("user", self._user.render(passages=passages,
                                                         question=question).strip()))
        return tuple(out)
