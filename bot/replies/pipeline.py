"""The reply pipeline: safety in, limits, retrieval, a quoted or generated grounded answer,
safety out, memory — and an honest "I don't know" that is logged for moderators."""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from bot.commands.registry import CommandSpec
from bot.core import Core
from bot.events import Citation, Inbound, Outbound
from bot.knowledge.models import FaqEntry, Product
from bot.knowledge.retrieval import Fusion, Hit, Retriever, SearchResult
from bot.knowledge.store import KnowledgeStore
from bot.limits import Limits, LimitSettings
from bot.persona import Persona, load_persona
from bot.replies.grounding import ungrounded
from bot.replies.memory import Memory, Turn
from bot.replies.prompt import PromptRenderer, passage
from bot.replies.unanswered import UnansweredLog
from bot.safety import SafetyChain, SafetyContext, default_filters
from bot.safety.filters import find_links, normalise_url
from bot.safety.pii import EMAIL
from lm_service.api import GenerationRequest, LMBusy, LMTimeout, Priority

log = logging.getLogger(__name__)

_REFERS_BACK = re.compile(r"\b(it|its|it's|that|this|those|these|they|them|one|ones)\b",
                          re.IGNORECASE)

MAX_PASSAGES = 3
RELATED_WITHIN = 0.08  # a second source is cited only when nearly as relevant as the first
PROMPT_TOKENS_ESTIMATE = 450
FOLLOW_UP_WORDS = 6  # "is it in stock?", "what about the green one?"

DONT_KNOW = ("I don't know that one yet — I've flagged your question for the team so they "
             "can answer it.")
EMPTY = "Ask me anything about the shop — products, orders, shipping or returns."


AnswerListener = Callable[[str, str, bool, Sequence[Citation]], Awaitable[None]]
"""`async listener(merchant, platform, answered, citations)`, told of every question taken."""


@dataclass(frozen=True)
class Draft:
    text: str
    sources: list[Hit]
    generated: bool
    tokens: int


class ReplyPipeline:
    """Answers members; built from the Core like every feature, holding no background state."""

    def __init__(self, core: Core, retriever: Retriever | None = None) -> None:
        self.core = core
        settings = core.settings
        self.knowledge = KnowledgeStore(core.store, core.lm)
        self.retriever = retriever or Retriever(self.knowledge)
        self.prompts = PromptRenderer()
        self.safety = SafetyChain(default_filters(settings.max_question_chars,
                                                  settings.deny_list))
        self.mode = settings.reply_mode
        self.max_new_tokens = settings.reply_max_new_tokens
        self.generate_deadline_s = settings.reply_generate_deadline_s
        self._limits: Limits | None = None
        self._memory: Memory | None = None
        self._unanswered: UnansweredLog | None = None
        self.answer_listeners: list[AnswerListener] = []

    @property
    def fusion(self) -> Fusion:
        return self.retriever.fusion

    def _parts(self) -> tuple[Limits, Memory, UnansweredLog]:
        # The Redis client exists only after Store.start(), so these are made on first use.
        if self._limits is None or self._memory is None or self._unanswered is None:
            redis, s = self.core.store.redis, self.core.settings
            self._limits = Limits(redis, LimitSettings(
                s.member_messages_per_minute, s.community_messages_per_minute,
                s.community_daily_tokens, s.member_daily_tokens))
            self._memory = Memory(redis, s.memory_turns, s.memory_ttl_s)
            self._unanswered = UnansweredLog(redis)
        return self._limits, self._memory, self._unanswered

    def commands(self) -> list[CommandSpec]:
        return []

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def answer(self, inbound: Inbound, merchant: str) -> list[Outbound]:
        """One member question to one reply (the router's `ConversationHandler`); listeners
        (analytics) hear whether it was answered and from which sources."""
        replies = await self._answer(inbound, merchant)
        if not inbound.recorded:  # the merchant's evaluation batch is not member activity
            return replies
        for reply in replies:
            for listener in self.answer_listeners:
                try:  # analytics must never cost the member their answer
                    await listener(merchant, inbound.platform.value, reply.answered,
                                   reply.citations)
                except Exception:
                    log.exception("answer listener failed on %s", inbound.message_id)
        return replies

    async def _answer(self, inbound: Inbound, merchant: str) -> list[Outbound]:
        limits, memory, unanswered = self._parts()
        keys = self.core.store.keys(merchant)
        community = inbound.community.key if inbound.community else None
        channel = inbound.community.channel_key if inbound.community else "direct"
        if inbound.limited:
            await limits.hit(keys, inbound.member.key, community)
        ctx = SafetyContext(merchant, inbound.member.key)
        checked = await self.safety.check_input(inbound.text, ctx)
        if checked.blocked:
            log.info("input refused for %s: %s", inbound.member.key, checked.reason)
            return [self._reply(inbound, checked.reply, (), answered=False)]
        question = checked.text  # cleaned and redacted: the only form stored or sent on
        if not question:
            return [self._reply(inbound, EMPTY, (), answered=False)]
        estimate = len(question) // 3 + PROMPT_TOKENS_ESTIMATE + self.max_new_tokens
        budget_key = (await limits.reserve_tokens(keys, community, estimate,
                                                  member_key=inbound.member.key)
                      if inbound.limited else None)
        history = (await memory.recent(keys, inbound.member.key, channel)
                   if inbound.recorded else [])
        result = await self._search(merchant, question,
                                    [t.text for t in history if t.role == "user"])
        hits = self._sources(result)
        if not hits:
            if budget_key is not None:
                await limits.settle(budget_key, estimate, len(question) // 3)
            if inbound.recorded:
                await unanswered.add(keys, question, inbound.member.key, community)
                await memory.add(keys, inbound.member.key, channel, question, DONT_KNOW)
            return [self._reply(inbound, DONT_KNOW, (), answered=False)]
        persona = await load_persona(self.core.store, merchant)
        draft = await self._draft(persona, question, hits, history)
        if budget_key is not None:
            await limits.settle(budget_key, estimate, draft.tokens or len(question) // 3)
        out_ctx = self._output_context(merchant, inbound, persona, draft.sources)
        verdict = await self.safety.check_output(draft.text, out_ctx)
        if verdict.blocked:
            log.warning("output refused for %s: %s", inbound.member.key, verdict.reason)
            return [self._reply(inbound, verdict.reply, (), answered=False)]
        if inbound.recorded:
            await memory.add(keys, inbound.member.key, channel, question, verdict.text)
        citations = tuple(Citation(h.kind, h.id, h.title, h.url) for h in draft.sources)
        return [self._reply(inbound, verdict.text, citations, answered=True,
                            extras={"generated": draft.generated,
                                    "score": round(draft.sources[0].score, 3)})]

    async def _search(self, merchant: str, question: str,
                      earlier: list[str]) -> SearchResult:
        """Search the question; a short follow-up that leans on the conversation ("is it in
        stock?", "how much is that one?") is searched together with the previous question
        too. A new topic is never read as a follow-up, so an off-topic question after a good
        one still gets "I don't know" rather than the previous answer again."""
        result = await self.retriever.search(merchant, question, limit=MAX_PASSAGES + 2)
        follow_up = (bool(earlier) and len(question.split()) <= FOLLOW_UP_WORDS
                     and bool(_REFERS_BACK.search(question)))
        if not follow_up:
            return result
        combined = await self.retriever.search(merchant, f"{earlier[-1]} {question}",
                                               limit=MAX_PASSAGES + 2)
        if combined.hits and self.fusion.relevant(combined.hits[0]):
            return combined
        return result

    def _sources(self, result: SearchResult) -> list[Hit]:
        relevant = result.relevant(self.fusion)
        if not relevant:
            return []
        best = relevant[0].score
        return [h for h in relevant if h.score >= best - RELATED_WITHIN][:MAX_PASSAGES]

    def _confident(self, hits: list[Hit]) -> bool:
        top = hits[0]
        runner_up = hits[1].score if len(hits) > 1 else 0.0
        return top.score >= self.fusion.confident and top.score - runner_up >= self.fusion.margin

    async def _draft(self, persona: Persona, question: str, hits: list[Hit],
                     history: list[Turn]) -> Draft:
        quoted = Draft(quote(hits[0]), hits[:1], generated=False, tokens=0)
        if self.mode == "quote" or (self.mode == "auto" and self._confident(hits)):
            return quoted
        passages = [passage(h) for h in hits]
        # Only the last exchange: more context drowns the passages for a 135M model.
        messages = self.prompts.messages(persona, passages, question, history[-2:])
        try:
            result = await self.core.lm.generate(GenerationRequest(
                messages=messages, max_new_tokens=self.max_new_tokens, temperature=0.0,
                priority=Priority.INTERACTIVE, deadline_s=self.generate_deadline_s,
            ))
        except (LMTimeout, LMBusy):
            # The member still gets the source itself rather than "try again later".
            log.info("generation too slow or queue full; quoting the source")
            return quoted
        text = result.text.strip()
        problems = ungrounded(text, [p.text for p in passages] + [p.title for p in passages]
                              + [question])
        tokens = result.prompt_tokens + result.completion_tokens
        if not text or problems:
            log.info("generated answer not grounded (%s); quoting the source", problems)
            return Draft(quoted.text, quoted.sources, False, tokens)
        return Draft(text, hits, True, tokens)

    def _output_context(self, merchant: str, inbound: Inbound, persona: Persona,
                        sources: list[Hit]) -> SafetyContext:
        urls: set[str] = set()
        contacts: set[str] = set()
        for hit in sources:
            text = passage(hit).text
            urls.update(normalise_url(u) for u in find_links(text))
            if hit.url:
                urls.add(normalise_url(hit.url))
            contacts.update(m.group(0).lower() for m in EMAIL.finditer(text))
        return SafetyContext(merchant, inbound.member.key, frozenset(urls), frozenset(contacts),
                             secrets=(self.prompts.system(persona),))

    @staticmethod
    def _reply(inbound: Inbound, text: str, citations: tuple[Citation, ...], answered: bool,
               extras: dict[str, object] | None = None) -> Outbound:
        return Outbound(text=text, citations=citations, reply_to=inbound.message_id,
                        answered=answered, extras=dict(extras or {}))


def quote(hit: Hit) -> str:
    """The source itself, lightly framed: an FAQ answer as written, a product's facts."""
    record = hit.record
    if isinstance(record, FaqEntry):
        return record.answer
    assert isinstance(record, Product)
    stock = "in stock" if record.in_stock else "currently out of stock"
    return f"The {record.name} is {record.price_text()} and {stock}. {record.description}"

