"""Answer quality and latency on bench/eval: citation accuracy, off-topic refusals, p95 time.

    python bench/answer_quality.py [--json] [--ablation] [--mode auto|quote|generate]...
                                   [--concurrency 16] [--generate-sample 40] [--phrasings 4]

The evaluation set (bench/eval/questions.jsonl) holds paraphrased, misspelled and chatty
questions about the demo shop, written apart from the FAQ's alternates, and off-topic ones.
Rows alternate between a dev half (used to choose the fusion thresholds) and a test half.
The FAQ's LM-written phrasings are generated first (the bot writes them in the background).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.app import App  # noqa: E402
from bot.events import Inbound, MemberRef, Platform  # noqa: E402
from bot.knowledge.feature import KnowledgeFeature  # noqa: E402
from bot.knowledge.retrieval import Fusion, Hit, Retriever  # noqa: E402
from bot.replies.grounding import numbers, ungrounded  # noqa: E402
from bot.replies.prompt import passage  # noqa: E402
from bot.settings import load_settings  # noqa: E402
from lm_service.api import LMClient  # noqa: E402

EVAL = ROOT / "bench" / "eval" / "questions.jsonl"

VARIANTS = {
    "minilm only": Fusion(use_speller=False, use_lexical=False, threshold=0.5),
    "minilm + speller": Fusion(use_lexical=False, threshold=0.5),
    "hybrid, no vector floor": Fusion(vector_floor=0.0),
    "lexical + minilm (no speller)": Fusion(use_speller=False),
    "hybrid (threshold + floor only)": Fusion(use_phrasings=False, use_clear_winner=False),
    "hybrid + clear winner": Fusion(use_phrasings=False),
    "hybrid + LM phrasings, no clear winner": Fusion(use_clear_winner=False),
    "hybrid + clear winner + LM phrasings (default)": Fusion(),
    "  ... + phrasings' words in lexical": Fusion(phrasing_words=True),
    "  ... mean over an entry's phrasings, not best": Fusion(mean_vectors=True),
}


def load_eval(path: Path = EVAL) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    for i, row in enumerate(rows):
        row["split"] = "dev" if i % 2 == 0 else "test"
    return rows


def score_rows(rows: list[dict[str, Any]], cited: list[tuple[str, str] | None]) -> dict[str, float]:
    """top-1 accuracy on in-scope rows, and off-topic rows answered without any citation."""
    inscope = [(r, c) for r, c in zip(rows, cited, strict=True) if r["expect"]]
    offtopic = [(r, c) for r, c in zip(rows, cited, strict=True) if not r["expect"]]
    correct = sum(1 for r, c in inscope if c == (r["expect"]["kind"], r["expect"]["id"]))
    clean = sum(1 for _, c in offtopic if c is None)
    return {"top1": correct / max(1, len(inscope)), "offtopic_clean": clean / max(1, len(offtopic)),
            "n_inscope": len(inscope), "n_offtopic": len(offtopic)}


async def retrieval_table(app: App, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each retrieval idea on its own: vector only, + typo correction, + lexical fusion."""
    out = []
    for name, fusion in VARIANTS.items():
        knowledge = next(f.knowledge for f in app.features if isinstance(f, KnowledgeFeature))
        retriever = Retriever(knowledge, fusion)
        cited = []
        for row in rows:
            result = await retriever.search(app.settings.merchant, row["q"], limit=1)
            hit = result.hits[0] if result.hits else None
            cited.append((hit.kind, hit.id) if hit and fusion.relevant(hit) else None)
        for split in ("dev", "test", "all"):
            picked = [(r, c) for r, c in zip(rows, cited, strict=True)
                      if split == "all" or r["split"] == split]
            scores = score_rows([r for r, _ in picked], [c for _, c in picked])
            out.append({"variant": name, "split": split, **scores})
    return out


async def pipeline_run(app: App, rows: list[dict[str, Any]],
                       concurrency: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Every question through App.handle, `concurrency` members asking at once."""
    gate = asyncio.Semaphore(concurrency)
    results: list[dict[str, Any]] = [{} for _ in rows]

    async def one(i: int, row: dict[str, Any]) -> None:
        async with gate:
            inbound = Inbound(Platform.CONSOLE, MemberRef(Platform.CONSOLE, f"bench-{i}"),
                              row["q"], merchant=app.settings.merchant, mentions_bot=True)
            started = time.perf_counter()
            replies = await app.handle(inbound)
            elapsed = time.perf_counter() - started
            first = replies[0] if replies else None
            cite = first.citations[0] if first and first.citations else None
            results[i] = {"q": row["q"], "reply": first.text if first else "",
                          "cited": (cite.kind, cite.id) if cite else None,
                          "answered": bool(first and first.answered),
                          "generated": bool(first and first.extras.get("generated")),
                          "latency_s": elapsed}

    started = time.perf_counter()
    await asyncio.gather(*(one(i, r) for i, r in enumerate(rows)))
    wall = time.perf_counter() - started
    await app.router.drain()
    latencies = sorted(r["latency_s"] for r in results)
    summary = score_rows(rows, [r["cited"] for r in results])
    summary["faithful"] = await faithful_share(app, rows, results)
    summary.update({
        "p50_s": statistics.median(latencies),
        "p95_s": latencies[max(0, round(0.95 * len(latencies)) - 1)],
        "max_s": latencies[-1], "wall_s": wall, "concurrency": concurrency,
        "generated_share": sum(r["generated"] for r in results) / len(results),
    })
    return summary, results


async def faithful_share(app: App, rows: list[dict[str, Any]],
                         results: list[dict[str, Any]]) -> float:
    """In-scope questions answered from the right source without contradicting it: every
    number and link in the reply is in the source, and a source with numbers (prices, days)
    has at least one of them in the reply."""
    knowledge = next(f.knowledge for f in app.features if isinstance(f, KnowledgeFeature))
    good = total = 0
    for row, result in zip(rows, results, strict=True):
        if not row["expect"]:
            continue
        total += 1
        kind, record_id = row["expect"]["kind"], row["expect"]["id"]
        if result["cited"] != (kind, record_id):
            continue
        record = (await knowledge.faq(app.settings.merchant, record_id) if kind == "faq"
                  else await knowledge.product(app.settings.merchant, record_id))
        if record is None:
            continue
        source = passage(Hit(kind, record, 1.0, 1.0, 1.0))
        text = f"{source.title} {source.text}"
        wanted = numbers(source.text)
        if not ungrounded(result["reply"], [text, row["q"]]) and (
                not wanted or wanted & numbers(result["reply"])):
            good += 1
    return good / max(1, total)


async def write_phrasings(app: App, count: int) -> dict[str, Any]:
    """Generate the FAQ's phrasings now (the bot does it in the background after an import)."""
    feature = next(f for f in app.features if isinstance(f, KnowledgeFeature))
    paraphraser = feature.paraphraser  # the background worker's: it waits for this pass
    paraphraser.count = count
    started = time.perf_counter()
    entries = await paraphraser.fill(app.settings.merchant)
    stored = await paraphraser.stored(app.settings.merchant)
    return {"count": count, "entries": entries, "requests": paraphraser.generated,
            "kept": sum(len(p.lines) for p in stored.values()),
            "seconds": time.perf_counter() - started}


def build_app(lm: LMClient, data_dir: Path, mode: str) -> App:
    settings = load_settings(data_dir=data_dir, demo_shop=True, redis_url=None,
                             reply_mode=mode, member_messages_per_minute=10_000,
                             community_messages_per_minute=10_000,
                             community_daily_tokens=100_000_000,
                             # generate mode measures the model's answers: wait for them
                             reply_generate_deadline_s=60.0 if mode == "generate" else 3.0)
    return App(settings, lm=lm)


def print_table(title: str, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    cols = list(rows[0])
    widths = [max(len(c), *(len(_fmt(r[c])) for r in rows)) for c in cols]
    print(f"\n{title}")
    print("  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)))
    for row in rows:
        print("  ".join(_fmt(row[c]).ljust(w) for c, w in zip(cols, widths, strict=True)))


def _fmt(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)


async def main_async(args: argparse.Namespace, lm: LMClient | None = None) -> dict[str, Any]:
    rows = load_eval()
    report: dict[str, Any] = {}
    modes = args.mode or [load_settings().reply_mode]
    owned = lm is None
    if lm is None:
        from lm_service.client import create_lm_client

        lm = create_lm_client(load_settings(), redis=None)
        await lm.start()
    with tempfile.TemporaryDirectory() as tmp:
        for n, mode in enumerate(modes):
            app = build_app(lm, Path(tmp) / mode, mode)
            await app.start()
            try:
                if n == 0:
                    report["phrasings"] = await write_phrasings(app, args.phrasings)
                if args.ablation and n == 0:
                    report["retrieval"] = await retrieval_table(app, rows)
                # every third row, so a sample still mixes FAQ, product and off-topic rows
                picked = rows if mode != "generate" else rows[::3][: args.generate_sample]
                summary, details = await pipeline_run(app, picked, args.concurrency)
                report.setdefault("pipeline", []).append({"mode": mode, **summary})
                report.setdefault("answers", {})[mode] = details
            finally:
                await app.stop()
    if owned:
        await lm.stop()
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--ablation", action="store_true", help="score each retrieval idea")
    parser.add_argument("--mode", action="append", choices=["auto", "quote", "generate"],
                        help="reply mode(s) to run (repeat to compare; default: the "
                        "reply_mode setting)")
    parser.add_argument("--generate-sample", type=int, default=40,
                        help="questions answered in generate mode (it is slow)")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--phrasings", type=int, default=load_settings().faq_paraphrases,
                        help="LM-written phrasings per FAQ entry (0: none)")
    args = parser.parse_args(argv)
    report = asyncio.run(main_async(args))
    if args.json:
        print(json.dumps({k: v for k, v in report.items() if k != "answers"}))
    else:
        print_table("Retrieval ideas (top-1 citation accuracy, off-topic without citation)",
                    report.get("retrieval", []))
        print_table("LM-written FAQ phrasings", [report["phrasings"]])
        print_table("Full pipeline", report["pipeline"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
