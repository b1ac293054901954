"""`shopkeep ask` end to end, as a merchant runs it: each call a fresh App that loads its own
models (from the session's converted-model cache) on the test Redis, holding the demo shop."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import pytest
import redis

from bot.cli import main
from bot.demo import DEMO_DIR
from bot.knowledge.feature import KnowledgeFeature
from bot.storage.keys import Keys
from lm_service.api import LMClient
from tests.support.harness import running_app

QUESTIONS = [
    "do you ship to Canada?", "which tent for winter?", "how do I return my boots?",
    "do you price match?", "what is the warranty on tents?", "can I pay with paypal?",
    "how long does shipping take?", "is the Summit sleeping bag in stock?",
]


@pytest.fixture
def shop(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, redis_url: str,
         redis_sync: redis.Redis, lm_client: LMClient) -> redis.Redis:
    """The demo shop on the test Redis, and settings pointing `shopkeep` at it and at the
    cached models. (The demo loads by itself only into the embedded store.)"""

    async def load_demo() -> None:
        async with running_app(redis_url, tmp_path, lm_client) as app:
            knowledge = next(f for f in app.features if isinstance(f, KnowledgeFeature))
            await knowledge.load_demo(DEMO_DIR, "default")

    asyncio.run(load_demo())
    cache = Path(os.environ.get("SHOPKEEP_TEST_MODEL_CACHE", "var/test-models")).resolve()
    (tmp_path / "models").symlink_to(cache, target_is_directory=True)
    monkeypatch.setenv("SHOPKEEP_REDIS_URL", redis_url)
    monkeypatch.setenv("SHOPKEEP_DATA_DIR", str(tmp_path))
    return redis_sync


def ask(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[Any], str]:
    """(exit status, the JSON lines printed, stderr)."""
    status = main(["ask", *argv])
    out, err = capsys.readouterr()
    return status, [json.loads(line) for line in out.splitlines() if line.strip()], err


def test_each_call_answers_its_first_question_and_stores_what_it_observed(
        shop: redis.Redis, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    # Every call is a fresh start whose embedder loads as its question arrives; what each
    # one observed must be in the member's profile before it exits, for /recommend.
    for text in ("I need a warm sleeping bag for winter camping",
                 "what sleeping bag is good below freezing?",
                 "is a down sleeping bag better than a synthetic one?",
                 "my old sleeping bag is too cold in the mountains"):
        status, [result], _ = ask(capsys, text, "--user", "dana", "--json")
        assert status == 0 and "error" not in result, (text, result)
        assert result["answered"] and result["citations"], (text, result)
    status, [picked], _ = ask(capsys, "/recommend", "--user", "dana", "--json")
    assert status == 0 and "Sleeping Bag" in picked["reply"], picked
    status, [mydata], _ = ask(capsys, "/mydata", "--user", "dana", "--json")
    [saved] = mydata["files"]  # under the data folder, like the console's
    assert status == 0 and Path(saved).parent == tmp_path / "files"
    assert "sleeping bag" in Path(saved).read_text(encoding="utf-8")


def test_error_replies_are_not_answers_and_exit_non_zero(
        shop: redis.Redis, capsys: pytest.CaptureFixture[str], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    status, [refused], _ = ask(capsys, "/persona set name Ranger", "--json")
    assert status == 1 and not refused["answered"] and refused["error"] == "refused"

    broken = tmp_path / "no-embedder"
    broken.mkdir()
    monkeypatch.setenv("SHOPKEEP_EMBED_MODEL", str(broken))  # found, then fails to load
    status, [result], _ = ask(capsys, "do you ship to Canada?", "--json")
    assert status == 1, result
    assert result == {**result, "answered": False, "error": "lm_unavailable", "citations": []}


@pytest.mark.parametrize(("merchant", "said"), [
    ("Bad Merchant!", "--merchant: merchant id 'Bad Merchant!' must be 1-63 lowercase"),
    ("nosuch", "there is no merchant 'nosuch' (known: default)"),
])
def test_a_bad_merchant_is_a_clear_error(
        shop: redis.Redis, capsys: pytest.CaptureFixture[str], merchant: str, said: str) -> None:
    status, printed, err = ask(capsys, "hello", "--merchant", merchant)
    assert status == 1 and printed == []
    assert said in err and "Traceback" not in err
    assert "nosuch" not in shop.smembers("sk:_global:merchants")


def test_a_batch_is_neither_rate_limited_nor_budgeted_and_leaves_nothing_behind(
        shop: redis.Redis, capsys: pytest.CaptureFixture[str], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOPKEEP_MEMBER_MESSAGES_PER_MINUTE", "2")
    monkeypatch.setenv("SHOPKEEP_MEMBER_DAILY_TOKENS", "1")
    monkeypatch.setenv("SHOPKEEP_COMMUNITY_MESSAGES_PER_MINUTE", "2")
    lines = QUESTIONS * 5 + ["what is the airspeed of a swallow?",
                             json.dumps({"q": "do you ship to Canada?", "user": "zoe"}), ""]
    batch = tmp_path / "questions.txt"
    batch.write_text("\n".join(lines), encoding="utf-8")

    status, printed, _ = ask(capsys, "--batch", str(batch), "--json")
    *results, last = printed
    assert status == 0
    assert [r["q"] for r in results] == [line if not line.startswith("{") else
                                         "do you ship to Canada?" for line in lines if line]
    refused = [r for r in results if "faster than I can" in r["reply"]
               or "as much as I can" in r["reply"] or r.get("error")]
    assert refused == []
    summary = last["summary"]
    assert summary["questions"] == len(results) == 42
    assert summary["answered"] == sum(1 for r in results if r["answered"]) >= 35
    assert summary["not_answered"] == 42 - summary["answered"] and summary["errors"] == {}
    assert not results[40]["answered"]  # the swallow: "I don't know", in the counts
    assert summary["most_cited"][0]["count"] >= 6  # Canada: 5 + zoe's
    # Nothing learned or logged: no profile, no memory, no unanswered question.
    keys = Keys("default")
    assert shop.keys(f"{keys.root}:profile:*") == []
    assert shop.keys(f"{keys.root}:*memory*") == []
    assert shop.keys(f"{keys.root}:*unanswered*") == []
    assert shop.keys(f"{keys.root}:stats:*") == []

    # The summary without --json: readable, on stderr.
    status, printed, err = ask(capsys, "--batch", str(batch))
    assert status == 0 and len(printed) == 42 and "summary" not in printed[-1]
    assert f"42 questions: {summary['answered']} answered" in err


def test_batch_file_errors_name_the_line(
        shop: redis.Redis, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    batch = tmp_path / "questions.jsonl"
    batch.write_text('do you ship to Canada?\n{"question": "no q field"}\n', encoding="utf-8")
    status, printed, err = ask(capsys, "--batch", str(batch))
    assert status == 1 and printed == []
    assert 'questions.jsonl line 2: expected {"q": "your question"}' in err
