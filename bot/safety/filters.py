"""The built-in filters: clean and bound input, refuse prompt injection, redact personal data,
and keep mass mentions, unknown links and denied words out of replies."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

from bot.safety.base import SafetyContext, SafetyFilter, Verdict
from bot.safety.pii import INVISIBLE, redact

# Zero-width and bidi controls hide text from moderators and split words the filters look for.
_INVISIBLE = INVISIBLE

INJECTION_REPLY = ("I can only help with questions about the shop — its products, orders, "
                   "shipping and policies. What can I help you find?")

_INJECTION = [re.compile(p, re.IGNORECASE) for p in (
    r"\b(ignore|disregard|forget|override|bypass)\b.{0,40}\b(instruction|rule|prompt|guideline|"
    r"direction|previous|above|system)",
    r"\b(system|hidden|initial|original|developer)\s+(prompt|message|instruction)",
    r"\b(reveal|show|print|repeat|tell|give|display|output|leak|dump)\b.{0,40}\b(your|the)\s+"
    r"(prompt|instructions|rules|configuration|context)",
    r"\bwhat\s+(are|were)\s+your\s+(instructions|rules|guidelines)",
    r"\byou\s+are\s+now\b|\bact\s+as\b.{0,30}\b(admin|developer|dan|jailbr)|\bjailbreak|"
    r"\bdeveloper\s+mode|\bdo\s+anything\s+now\b",
    r"\b(other|another|all|every)\s+(members?|users?|customers?|people)('s|s')?\b.{0,40}"
    r"\b(data|email|emails|address|addresses|phone|orders?|messages?|details|info|history)",
    r"\b(email|address|phone|order|details|messages?)\b.{0,30}\bof\s+(other|another|all)\s+"
    r"(members?|users?|customers?)",
    r"\bwhat\s+did\s+(@?\w+|the\s+other\s+\w+)\s+(say|ask|write|order)",
    r"<\|?(im_start|im_end|system)\|?>|\[/?(inst|system)\]",
)]


class CleanInput:
    """Strips invisible characters, normalises Unicode look-alikes and caps the length."""

    name = "clean"

    def __init__(self, max_chars: int = 1000) -> None:
        self.max_chars = max_chars

    async def check_input(self, text: str, ctx: SafetyContext) -> Verdict:
        cleaned = unicodedata.normalize("NFKC", _INVISIBLE.sub("", text))
        cleaned = "".join(ch for ch in cleaned if ch in "\n\t" or unicodedata.category(ch) != "Cc")
        changes: list[str] = ["invisible"] if cleaned != text else []
        if len(cleaned) > self.max_chars:
            cleaned = cleaned[: self.max_chars].rsplit(" ", 1)[0]
            changes.append("truncated")
        return Verdict(cleaned.strip(), changes=tuple(changes))

    async def check_output(self, text: str, ctx: SafetyContext) -> Verdict:
        return Verdict(_INVISIBLE.sub("", text))


class InjectionGuard:
    """Refuses attempts to override the instructions, read the prompt or other members' data;
    on the way out, refuses any reply that echoes the system prompt."""

    name = "injection"

    async def check_input(self, text: str, ctx: SafetyContext) -> Verdict:
        for pattern in _INJECTION:
            if pattern.search(text):
                return Verdict(text, blocked=True, reason=f"matched {pattern.pattern[:40]!r}",
                               reply=INJECTION_REPLY)
        return Verdict(text)

    async def check_output(self, text: str, ctx: SafetyContext) -> Verdict:
        lowered = " ".join(text.lower().split())
        for secret in ctx.secrets:
            for line in secret.lower().splitlines():
                line = " ".join(line.split())
                if len(line) >= 30 and line in lowered:
                    return Verdict(text, blocked=True, reason="echoed the prompt",
                                   reply=INJECTION_REPLY)
        return Verdict(text)


class RedactPII:
    """Replaces emails, phone numbers and card numbers before anything is stored or sent to
    the model; and in replies, in case the model repeats one from its context."""

    name = "pii"

    async def check_input(self, text: str, ctx: SafetyContext) -> Verdict:
        cleaned, found = redact(text)
        return Verdict(cleaned, changes=tuple(f"pii:{k}" for k in found))

    async def check_output(self, text: str, ctx: SafetyContext) -> Verdict:
        cleaned, found = redact(text, keep=ctx.allowed_contacts)
        return Verdict(cleaned, changes=tuple(f"pii:{k}" for k in found))


_MASS_MENTION = re.compile(r"@(everyone|here|channel|all)\b", re.IGNORECASE)
_ROLE_OR_USER_PING = re.compile(r"<@[&!]?\d+>|<#\d+>")
_USER_OR_ROLE_PING = re.compile(r"<@[&!]?\d+>")


def strip_mentions(text: str) -> str:
    """No mass ping (`@everyone` becomes `everyone`) and no user or role ping: what every
    reply gets, command errors that echo what a member typed included."""
    return _USER_OR_ROLE_PING.sub("(mention)", _MASS_MENTION.sub(lambda m: m.group(1), text))


# A bare domain may only start where a run of name characters starts: from inside one, every
# start would rescan the run (a quadratic cost on "a.a.a.a...").
_URL = re.compile(r"(?:https?://|www\.)[^\s<>\"')\]]+|(?<![a-z0-9.-])[a-z0-9-]+(?:\.[a-z0-9-]+)*\."
                  r"(?:com|net|org|io|co|shop|store|example|ly|gg|me|app|xyz|info|biz)"
                  r"(?:/[^\s<>\"')\]]*)?", re.IGNORECASE)


def find_links(text: str) -> list[str]:
    """Web addresses in `text`, with or without a scheme."""
    return [m.group(0) for m in _URL.finditer(text)]


def normalise_url(url: str) -> str:
    url = url.strip().rstrip(".,;:!?)").lower()
    url = re.sub(r"^https?://", "", url)
    return url.removeprefix("www.").rstrip("/")


class OutputGuard:
    """No mass or role pings, only links the merchant's own data contains, no denied words."""

    name = "output"

    def __init__(self, deny_list: Iterable[str] = ()) -> None:
        words = [w.strip() for w in deny_list if w.strip()]
        self._deny = (re.compile(r"\b(" + "|".join(re.escape(w) for w in words) + r")\b",
                                 re.IGNORECASE) if words else None)

    async def check_input(self, text: str, ctx: SafetyContext) -> Verdict:
        return Verdict(text)

    async def check_output(self, text: str, ctx: SafetyContext) -> Verdict:
        changes: list[str] = []
        out = _MASS_MENTION.sub(lambda m: m.group(1), text)
        out = _ROLE_OR_USER_PING.sub("", out)
        if out != text:
            changes.append("mentions")
        allowed = {normalise_url(u) for u in ctx.allowed_urls}

        def link(match: re.Match[str]) -> str:
            url = match.group(0)
            trail = url[len(url.rstrip(".,;:!?")):]
            if normalise_url(url) in allowed or "@" in url:
                return url
            changes.append("link")
            return "[link removed]" + trail

        out = _URL.sub(link, out)
        if self._deny is not None:
            masked = self._deny.sub(lambda m: "*" * len(m.group(0)), out)
            if masked != out:
                changes.append("deny")
            out = masked
        return Verdict(out, changes=tuple(changes))


def default_filters(max_chars: int, deny_list: Iterable[str]) -> list[SafetyFilter]:
    """The filters every reply passes through, in order."""
    return [CleanInput(max_chars), InjectionGuard(), RedactPII(), OutputGuard(deny_list)]
