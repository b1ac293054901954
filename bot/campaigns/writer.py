"""Writes posts with the model from a template per kind, then checks them: complete, safe,
and with prices and links only from the catalog. Retries with backoff; never returns half a post."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2

from bot.campaigns.sources import FaqFact, ProductFact
from bot.persona import Persona
from bot.safety.base import SafetyChain, SafetyContext
from lm_service.api import ChatMessage, GenerationRequest, LMClient, LMError, Priority

log = logging.getLogger(__name__)

PROMPTS_DIR = Path(__file__).resolve().parents[2] / "prompts"
USER_MARKER = "=====USER====="  # separates the system and the user message in a template
POST_KINDS = ("spotlight", "tips", "roundup", "question", "promotion")
_PRICE = re.compile(
    r"(?:(?P<sym>[$€£])\s?(?P<a>\d[\d,]*(?:\.\d{1,2})?))"
    r"|(?:(?P<b>\d[\d,]*(?:\.\d{1,2})?)\s?(?:USD|EUR|GBP|dollars?|euros?)\b)",
    re.IGNORECASE,
)
_URL = re.compile(r"(?:https?://|www\.)[^\s<>()\"']+", re.IGNORECASE)
_MASS_MENTION = re.compile(r"@(everyone|here)\b", re.IGNORECASE)
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


def problems(text: str, req: PostRequest, allowed_urls: frozenset[str]) -> list[str]:
    """Why a model's text may not be posted (empty list: it may)."""
    found: list[str] = []
    if len(text) < 20:
        found.append("the text is too short")
    if _MASS_MENTION.search(text):
        found.append("it pings everyone")
    prices = {round(p.price, 2) for p in (req.catalog or req.products)}
    for match in _PRICE.finditer(text):
        amount = float((match.group("a") or match.group("b")).replace(",", ""))
        if round(amount, 2) not in prices:
            found.append(f"price {match.group(0).strip()} is not in the catalog")
    for match in _URL.finditer(text):
        url = match.group(0).rstrip(".,;:!?")
        if url not in allowed_urls:
            found.append(f"link {url} is not a catalog or FAQ link")
    return found


def clean(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        text = text[1:-1].strip()
    return text


_SENTENCE_END = re.compile(r"[.!?…](?:[\"')\]]*)(?=\s|$)")


def whole_sentences(text: str) -> str:
    """`text` up to its last sentence end ('' when no sentence ends)."""
    ends = list(_SENTENCE_END.finditer(text))
    return text[: ends[-1].end()].strip() if ends else ""


def compose(prose: str, products: list[ProductFact]) -> str:
    facts = "\n".join(p.fact_line() for p in products)
    return f"{prose}\n\n{facts}" if facts else prose


class ContentWriter:
    """`write()` returns a checked post or raises `GenerationFailed` after `attempts` tries."""

    def __init__(self, lm: LMClient, safety: SafetyChain | None = None, attempts: int = 3,
                 backoff_s: float = 2.0, env: jinja2.Environment | None = None,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 deadline_s: float = 120.0) -> None:
        self.lm = lm
        self.deadline_s = deadline_s  # campaign drafts wait behind members' questions
        self.safety = safety or SafetyChain([])
        self.attempts = max(1, attempts)
        self.backoff_s = backoff_s
        self.env = env or template_env()
        self._sleep = sleep

    async def write(self, req: PostRequest) -> WrittenPost:
        if req.kind not in POST_KINDS:
            raise ValueError(f"unknown post kind {req.kind!r}")
        messages = render_messages(self.env, req)
        facts_len = len(compose("", req.products))
        budget = max(200, req.max_chars - facts_len - 2)
        allowed = frozenset(u for u in [p.url for p in req.catalog or req.products]
                            + [f.url for f in req.faq] if u)
        reasons: list[str] = []
        for attempt in range(self.attempts):
            if attempt:
                await self._sleep(self.backoff_s * 2 ** (attempt - 1))
            request = GenerationRequest(
                messages=messages, max_new_tokens=min(320, budget // 3),
                temperature=0.0 if attempt == 0 else 0.8, top_p=0.95, seed=attempt,
                priority=Priority.CAMPAIGN, deadline_s=self.deadline_s,
            )
            try:
                result = await self.lm.generate(request)
            except LMError as exc:
                reasons.append(f"attempt {attempt + 1}: the model failed ({type(exc).__name__})")
                continue
            prose = clean(result.text)
            if result.finish_reason == "length":
                # Keep the whole sentences of a text the token limit cut short; a fragment
                # too short to stand alone is rejected rather than posted half-written.
                prose = whole_sentences(prose)
            if len(prose) > budget or (result.finish_reason == "length" and len(prose) < 80):
                reasons.append(f"attempt {attempt + 1}: the text was cut off")
                continue
            issues = problems(prose, req, allowed)
            verdict = await self.safety.check_output(
                prose, SafetyContext(merchant=req.merchant, allowed_urls=allowed))
            if verdict.blocked:
                issues.append(f"the safety filter blocked it ({verdict.reason})")
            if issues:
                reasons.append(f"attempt {attempt + 1}: " + "; ".join(issues))
                continue
            return WrittenPost(compose(verdict.text, req.products), verdict.text, attempt + 1)
        log.warning("could not write a %s post for %s: %s", req.kind, req.merchant, reasons)
        raise GenerationFailed(reasons)
