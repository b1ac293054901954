"""`shopkeep ask`: one message, or a batch of questions, through the whole pipeline — the
merchant's way to see what members would be answered, before they ask."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from bot.errors import ConfigError
from bot.events import Inbound, MemberRef, Outbound, Platform, Privilege
from bot.ports import save_file
from bot.settings import Settings
from bot.storage.keys import merchants, validate_merchant_id

MOST_CITED_SHOWN = 5


@dataclass(frozen=True)
class Question:
    text: str
    user: str | None = None


def read_questions(path: Path) -> list[Question]:
    """One question per line: plain text, or a JSON object `{"q": ..., "user": ...}`.

    Blank lines are skipped. A line that starts with `{` must be such an object.

    Raises:
        ConfigError: the file cannot be read, or a JSON line is malformed (its number named).
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None
    questions = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        if not line.startswith("{"):
            questions.append(Question(line))
            continue
        try:
            item = json.loads(line)
        except (json.JSONDecodeError, RecursionError) as exc:
            reason = exc.msg if isinstance(exc, json.JSONDecodeError) else "nested too deep"
            raise ConfigError(f"{path.name} line {number}: not valid JSON ({reason}).") from None
        if not isinstance(item, dict) or not isinstance(item.get("q"), str):
            raise ConfigError(f'{path.name} line {number}: expected {{"q": "your question"}}'
                              " or the question as plain text.")
        user = item.get("user")
        questions.append(Question(item["q"], str(user) if user else None))
    if not questions:
        raise ConfigError(f"{path.name} holds no questions (one per line).")
    return questions


async def check_merchant(redis: Any, merchant: str, default: str) -> str:
    """`merchant` when it is a valid id that exists (the default one always does).

    Raises:
        ConfigError: an invalid id, or a merchant nothing was ever imported for.
    """
    _valid_id(merchant)
    if merchant == default:
        return merchant
    known = sorted(str(m) for m in await redis.smembers(merchants()))
    if merchant not in known:
        raise ConfigError(
            f"there is no merchant {merchant!r} (known: {', '.join(known) or 'none'}). "
            f"Create it by importing its FAQ or catalog: shopkeep import faq FILE "
            f"--merchant {merchant}")
    return merchant


async def _existing_merchant(settings: Settings, merchant: str) -> str:
    from bot.storage.store import Store

    _valid_id(merchant)
    store = Store(settings.redis_url, settings.data_dir)
    await store.start()
    try:
        return await check_merchant(store.redis, merchant, settings.merchant)
    finally:
        await store.stop()


def _valid_id(merchant: str) -> None:
    try:
        validate_merchant_id(merchant)
    except ValueError as exc:
        raise ConfigError(f"--merchant: {exc}.") from None


def result_of(question: str, replies: Sequence[Outbound], seconds: float,
              files: Sequence[str] = ()) -> dict[str, Any]:
    """What `--json` prints for one message (`files`: where the files it sent were saved)."""
    citations = [c.as_dict() for r in replies for c in r.citations]
    errors = [str(r.extras["error"]) for r in replies if r.extras.get("error")]
    result: dict[str, Any] = {
        "q": question,
        "reply": "\n\n".join(r.text for r in replies),
        "citations": [{k: v for k, v in c.items() if k in ("kind", "id", "title")}
                      for c in citations],
        "answered": bool(replies) and not errors and all(r.answered for r in replies),
        "latency_ms": round(seconds * 1000, 1),
    }
    if files:
        result["files"] = list(files)
    if errors:
        result["error"] = errors[0]
    return result


def summarise(results: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Counts over a batch: answered, not answered, errors, and the sources cited."""
    errors = Counter(r["error"] for r in results if r.get("error"))
    answered = sum(1 for r in results if r["answered"])
    cited = Counter(c["title"] for r in results for c in r["citations"])
    return {
        "questions": len(results),
        "answered": answered,
        "not_answered": len(results) - answered - sum(errors.values()),
        "errors": dict(errors),
        "with_sources": sum(1 for r in results if r["citations"]),
        "sources_cited": len(cited),
        "most_cited": [{"title": t, "count": n} for t, n in cited.most_common(MOST_CITED_SHOWN)],
    }


def print_summary(summary: dict[str, Any], out: TextIO) -> None:
    errors = sum(summary["errors"].values())
    kinds = ", ".join(f"{k} {n}" for k, n in sorted(summary["errors"].items()))
    out.write(f"{summary['questions']} questions: {summary['answered']} answered, "
              f"{summary['not_answered']} not answered, {errors} errors"
              + (f" ({kinds})" if kinds else "") + ".\n")
    out.write(f"{summary['with_sources']} replies cited sources; "
              f"{summary['sources_cited']} different sources cited")
    if summary["most_cited"]:
        out.write("; most cited: " + "; ".join(f"{m['title']} ({m['count']})"
                                               for m in summary["most_cited"]))
    out.write(".\n")


async def run_ask(settings: Settings, args: Any) -> int:
    """`shopkeep ask`: 0 when every message got the bot's reply (answered or "I don't
    know"), 1 when any reply was an error (model unavailable, storage down, refused).

    Raises:
        ConfigError: no message, an unreadable batch file, a bad or unknown merchant.
    """
    from bot.app import App
    from bot.progress import status

    if not args.text and not args.batch:
        raise ConfigError("Give the message to send, or --batch FILE.")
    if args.concurrency < 1:
        raise ConfigError("--concurrency must be at least 1.")
    batch = args.batch is not None
    questions = read_questions(args.batch) if batch else [Question(args.text)]
    merchant = settings.merchant
    if args.merchant:  # checked before the models load, not after
        merchant = await _existing_merchant(settings, args.merchant)
    app = App(settings)
    with status("Loading the models..."):
        await app.start()
    try:
        role = Privilege.parse(args.role)
        turns = asyncio.Semaphore(args.concurrency)

        async def one(question: Question) -> dict[str, Any]:
            user = question.user or args.user
            inbound = Inbound(
                platform=Platform.CONSOLE, member=MemberRef(Platform.CONSOLE, user, user),
                text=question.text, privilege=role, merchant=merchant, mentions_bot=True,
                limited=False, recorded=not batch,
            )
            async with turns:
                started = time.perf_counter()
                replies = await app.handle(inbound)
                seconds = time.perf_counter() - started
            files = [str(save_file(f, settings.data_dir / "files"))
                     for reply in replies for f in reply.files]
            return result_of(question.text, replies, seconds, files)

        results = await asyncio.gather(*(one(q) for q in questions))
        await app.settle()  # what the messages taught (profiles) is stored before we exit
    finally:
        await app.stop()
    _print(results, batch, args.json)
    return 1 if any(r.get("error") for r in results) else 0


def _print(results: list[dict[str, Any]], batch: bool, as_json: bool) -> None:
    if batch:
        for result in results:
            print(json.dumps(result, ensure_ascii=False))
        summary = summarise(results)
        if as_json:
            print(json.dumps({"summary": summary}, ensure_ascii=False))
        else:
            print_summary(summary, sys.stderr)
        return
    [result] = results
    if as_json:
        print(json.dumps({k: v for k, v in result.items() if k != "q"}, ensure_ascii=False))
        return
    print(result["reply"])
    if result["citations"]:
        print("Sources: " + " · ".join(c["title"] for c in result["citations"]))
    for path in result.get("files", []):
        print(f"(file saved: {path})")
