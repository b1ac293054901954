"""Writes posts with the model from a template per kind; keeps only text that passes."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2

from bot.campaigns.checks import clean, numbers_in, problems, whole_sentences
from bot.campaigns.sources import FaqFact, ProductFact
from bot.persona import Persona
from bot.safety.base import SafetyChain, SafetyContext
from lm_service.api import (
    ChatMessage,
    GenerationRequest,
    GenerationResult,
    LMClient,
    LMError,
    Priority,
)

log = logging.getLogger(__name__)

PROMPTS_DIR = Path(__file__).resolve().parents[2] / "prompts"
USER_MARKER = "=====USER====="  # separates the system and the user message in a template
POST_KINDS = ("spotlight", "tips", "roundup", "question", "promotion")
PLATFORM_HINTS = {
    "discord": "It goes to Discord: light **bold** is fine, no headings.",
    "telegram": "It goes to Telegram: plain text, at most one emoji.",
}


class GenerationFailed(Exception):
    """Every attempt failed; `reasons` says why each one was rejected (for the moderators)."""

    def __init__(self, reasons: list[str]) -> None:
        super().__init__("; ".join(reasons))
        self.reasons = reasons


@dataclass
class PostRequest:
    kind: str
    merchant: str
    persona: Persona
    products: list[ProductFact] = field(default_factory=list)
    brief: str = ""
    topic: str = ""
    audience: list[str] = field(default_factory=list)
    faq: list[FaqFact] = field(default_factory=list)
    questions: list[str] = field(default_factory=list)
    platforms: tuple[str, ...] = ()
    max_chars: int = 1800
    catalog: list[ProductFact] = field(default_factory=list)  # everything prices may come from


@dataclass(frozen=True)
class WrittenPost:
    text: str  # the model's prose followed by the catalog facts block
    prose: str
    attempts: int


def template_env(folder: Path = PROMPTS_DIR) -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(folder)),
                              undefined=jinja2.StrictUndefined, autoescape=False,
                              keep_trailing_newline=False)


def render_messages(env: jinja2.Environment, req: PostRequest) -> tuple[ChatMessage, ...]:
    name = "promotion.j2" if req.kind == "promotion" else f"post_{req.kind}.j2"
    template = env.get_template(name)
    hints = [PLATFORM_HINTS[p] for p in req.platforms if p in PLATFORM_HINTS]
    values: dict[str, Any] = {
        "persona": req.persona, "products": req.products, "brief": req.brief,
        "topic": req.topic, "audience": req.audience, "faq": req.faq[:3],
        "questions": req.questions[:8], "platform_hint": " ".join(hints[:1]),
        "max_words": max(30, min(120, req.max_chars // 8)),
    }
    system, marker, user = template.render(values).partition(USER_MARKER)
    if not marker:
        raise ValueError(f"prompt template {name} has no {USER_MARKER} line")
    return (ChatMessage("system", system.strip()), ChatMessage("user", user.strip()))


def compose(prose: str, products: list[ProductFact]) -> str:
    facts = "\n".join(p.fact_line() for p in products)
    return f"{prose}\n\n{facts}" if facts else prose


class ContentWriter:
    """`write()` returns a checked post or raises `GenerationFailed` after `attempts` tries.

    Each try asks for `candidates` texts at once (the engine batches them, so three cost
    little more than one) and keeps the first that passes every check.
    """

    def __init__(self, lm: LMClient, safety: SafetyChain | None = None, attempts: int = 3,
                 backoff_s: float = 2.0, env: jinja2.Environment | None = None,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 deadline_s: float = 180.0, candidates: int = 3,
                 max_new_tokens: int = 120) -> None:
        self.lm = lm
        self.deadline_s = deadline_s  # campaign drafts wait behind members' questions
        self.safety = safety or SafetyChain([])
        self.attempts = max(1, attempts)
        self.backoff_s = backoff_s
        self.env = env or template_env()
        self.candidates = max(1, candidates)
        self.max_new_tokens = max_new_tokens
        self._sleep = sleep

    async def write(self, req: PostRequest) -> WrittenPost:
        if req.kind not in POST_KINDS:
            raise ValueError(f"unknown post kind {req.kind!r}")
        messages = render_messages(self.env, req)
        budget = max(200, req.max_chars - len(compose("", req.products)) - 2)
        reasons: list[str] = []
        for attempt in range(self.attempts):
            if attempt:
                await self._sleep(self.backoff_s * 2 ** (attempt - 1))
            requests = [GenerationRequest(
                messages=messages, max_new_tokens=min(self.max_new_tokens, budget // 4),
                temperature=0.7, top_p=0.9, seed=attempt * self.candidates + i,
                priority=Priority.CAMPAIGN, deadline_s=self.deadline_s,
            ) for i in range(self.candidates)]
            results = await asyncio.gather(*(self.lm.generate(r) for r in requests),
                                           return_exceptions=True)
            rejected: list[str] = []
            for result in results:
                if isinstance(result, BaseException):
                    if not isinstance(result, LMError):
                        raise result
                    rejected.append(f"the model failed ({type(result).__name__})")
                    continue
                prose, why = await self._check(result, req, budget)
                if prose is not None:
                    return WrittenPost(compose(prose, req.products), prose, attempt + 1)
                rejected.append(why)
            reasons.append(f"attempt {attempt + 1}: " + " / ".join(sorted(set(rejected))))
        log.warning("could not write a %s post for %s: %s", req.kind, req.merchant, reasons)
        raise GenerationFailed(reasons)

    async def _check(self, result: GenerationResult, req: PostRequest,
                     budget: int) -> tuple[str | None, str]:
        """The postable prose of one result, or None and why not."""
        prose = clean(result.text)
        if result.finish_reason == "length":
            # Keep the whole sentences of a text the token limit cut short; a fragment
            # too short to stand alone is rejected rather than posted half-written.
            prose = whole_sentences(prose)
            if len(prose) < 80:
                return None, "the text was cut off"
        if len(prose) > budget:
            return None, "the text is too long"
        catalog = req.catalog or req.products
        urls = frozenset(u for u in [p.url for p in catalog] + [f.url for f in req.faq] if u)
        issues = problems(prose, {p.price for p in catalog}, urls, known_numbers(req))
        verdict = await self.safety.check_output(
            prose, SafetyContext(merchant=req.merchant, allowed_urls=urls))
        if verdict.blocked:
            issues.append(f"the safety filter blocked it ({verdict.reason})")
        if issues:
            return None, "; ".join(issues[:3])
        return verdict.text, ""


def known_numbers(req: PostRequest) -> set[str]:
    """Figures the model was given and may therefore repeat."""
    texts = [req.brief, req.topic, *req.questions]
    texts += [f"{p.name} {p.description}" for p in req.products]
    texts += [f"{f.question} {f.answer}" for f in req.faq[:3]]
    return numbers_in(texts)
