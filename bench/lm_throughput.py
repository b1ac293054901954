"""LM throughput benchmark: the engine through `LMClient` against naive and llama.cpp anchors.

Modes (greedy, `--tokens` new tokens each, end token ignored so every answer has the same
length): `shopkeep-1`, `shopkeep-16`, `shopkeep-64` (that many concurrent chat requests through
`InProcessLMClient`), `naive-seq` (transformers `model.generate` in float32, one at a time),
`llamacpp-seq` and `llamacpp-16` (llama-cpp-python on the same GGUF, n_threads = cores; the
optional `bench` extra). A mode that cannot run is left out and says why on stderr.
Also: cold start to first token (after the first conversion; the embedder loads after it, and
the time to the first embedding is reported beside it), peak RSS with both models loaded,
and `--traffic`: answers of natural length arriving at set rates, reporting the highest rate
sustained with p95 latency ≤ 5 s.

    python bench/lm_throughput.py                 # a table, with the ratios
    python bench/lm_throughput.py --quick --json  # one JSON object
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lm_service.api import ChatMessage, GenerationRequest  # noqa: E402

SYSTEM = (
    "You are Shopkeep, the assistant of Trailhead Outfitters, a shop for tents, sleeping bags, "
    "boots and camping stoves. Answer the member briefly and kindly, in plain words."
)
QUESTIONS = [
    "What is your return policy for tents bought online?",
    "Which sleeping bag is warm enough for winter camping?",
    "Do you ship to Canada, and how long does it take?",
    "Can you recommend boots for wet trails?",
    "How do I clean a camping stove after a trip?",
    "Is the family tent big enough for four people and a dog?",
    "What is the difference between a down and a synthetic jacket?",
    "Do you have any discounts for club members this month?",
    "How heavy is your lightest backpacking tent?",
    "Which stove works best at high altitude?",
    "Can I exchange boots that I already wore once?",
    "What should I pack for a weekend hike in autumn?",
]
CORES = len(os.sched_getaffinity(0))


def requests(count: int, tokens: int, seed: int = 0) -> list[GenerationRequest]:
    return [
        GenerationRequest(
            messages=(ChatMessage("system", SYSTEM),
                      ChatMessage("user", QUESTIONS[(i + seed) % len(QUESTIONS)])),
            max_new_tokens=tokens, deadline_s=600,
        )
        for i in range(count)
    ]


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def summary(concurrency: int, tokens: int, wall: float, latencies: list[float],
            ttfts: list[float]) -> dict[str, float]:
    return {
        "concurrency": concurrency,
        "tok_s": round(tokens / wall, 1),
        "p50_s": round(statistics.median(latencies), 3),
        "p95_s": round(percentile(latencies, 0.95), 3),
        "ttft_s": round(statistics.median(ttfts), 3),
    }


def note(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# -- shopkeep ------------------------------------------------------------------------------


async def timed_stream(client: Any, request: GenerationRequest) -> tuple[float, float]:
    started = time.perf_counter()
    first = None
    async for _ in client.stream(request):
        if first is None:
            first = time.perf_counter() - started
    return time.perf_counter() - started, first if first is not None else float("nan")


async def shopkeep_mode(client: Any, concurrency: int, tokens: int, rounds: int
                        ) -> dict[str, float]:
    latencies: list[float] = []
    ttfts: list[float] = []
    started = time.perf_counter()
    total = 0
    for r in range(rounds):
        batch = requests(concurrency, tokens, seed=r)
        results = await asyncio.gather(*(timed_stream(client, q) for q in batch))
        latencies += [lat for lat, _ in results]
        ttfts += [ttft for _, ttft in results]
        total += concurrency * tokens
    return summary(concurrency, total, time.perf_counter() - started, latencies, ttfts)


async def traffic(client: Any, duration: float, max_tokens: int) -> dict[str, Any]:
    """Natural-length answers arriving as a Poisson process; the highest rate with p95 ≤ 5 s."""
    client.engine.config.ignore_eos = False
    rng = random.Random(7)
    runs: list[dict[str, Any]] = []
    rates = [1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0, 24.0, 32.0]
    best = 0.0
    for rate in rates:
        tasks: list[asyncio.Task[tuple[float, float]]] = []
        started = time.perf_counter()
        i = 0
        while time.perf_counter() - started < duration:
            request = requests(1, rng.choice([32, 64, max_tokens]), seed=i)[0]
            tasks.append(asyncio.create_task(timed_stream(client, request)))
            i += 1
            await asyncio.sleep(rng.expovariate(rate))
        results = await asyncio.gather(*tasks, return_exceptions=True)
        ok = [r for r in results if isinstance(r, tuple)]
        latencies = [lat for lat, _ in ok]
        p95 = percentile(latencies, 0.95)
        run = {"rate": rate, "requests": len(tasks), "failed": len(tasks) - len(ok),
               "p50_s": round(statistics.median(latencies), 3) if latencies else None,
               "p95_s": round(p95, 3)}
        runs.append(run)
        note(f"traffic {rate:5.1f} req/s: p50 {run['p50_s']} s, p95 {run['p95_s']} s, "
             f"{run['failed']} failed")
        if p95 > 5.0 or run["failed"]:
            break
        best = rate
    client.engine.config.ignore_eos = True
    return {"sustained_rps_p95_le_5s": best, "runs": runs}


def engine_path(runner: Any) -> str:
    """Which code computes a decode step (figures differ by it; SHOPKEEP_LM_KERNELS=0 compares)."""
    if getattr(runner, "step_kernels", None) is not None:
        return "C++ kernels (linear, decode step)"
    if getattr(runner, "kernels", None) is not None:
        return "oneDNN linears + C++ attention"
    return f"torch ({type(runner).__name__})"


async def run_shopkeep(args: argparse.Namespace, out: dict[str, Any]) -> None:
    from lm_service.local import InProcessLMClient

    started = time.perf_counter()
    client = InProcessLMClient(
        args.model, max_batch=args.max_batch, max_queue=1024, timeout_s=600,
        cache_dir=args.cache_dir, ignore_eos=True, dtype=args.dtype,
    )
    await client.start()
    await timed_stream(client, requests(1, 1)[0])
    out["cold_start_s"] = round(time.perf_counter() - started, 2)
    out["engine_path"] = engine_path(client.engine.runner)
    note(f"cold start to first token: {out['cold_start_s']} s "
         f"(engine load {client.engine.load_seconds:.2f} s)")
    try:
        started = time.perf_counter()
        await client.embed([f"warm up {i}" for i in range(8)])
        # The embedder loads after the first token (on the first embedding, or when idle).
        out["first_embedding_s"] = round(time.perf_counter() - started, 2)
        note(f"first embedding after that: {out['first_embedding_s']} s "
             f"(embedder load {client.engine.embedder_load_seconds:.2f} s)")
        await shopkeep_mode(client, 4, 8, 1)  # warm-up
        plan = [(1, 2 if args.quick else 3), (16, 1 if args.quick else 2),
                (64, 1 if args.quick else 2)]
        for concurrency, rounds in plan:
            result = await shopkeep_mode(client, concurrency, args.tokens, rounds)
            out["modes"][f"shopkeep-{concurrency}"] = result
            note(f"shopkeep-{concurrency}: {result}")
        await client.embed([f"a sentence about tents number {i}" for i in range(64)])
        out["rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
        if args.traffic:
            window = 6.0 if args.quick else 15.0
            out["traffic"] = await traffic(client, window, 128)
            if args.compare_static:
                client.engine.config.continuous = False
                note("the same traffic with static micro-batches:")
                out["traffic_static"] = await traffic(client, window, 128)
                client.engine.config.continuous = True
    finally:
        await client.stop()


# -- anchors -------------------------------------------------------------------------------


def run_naive(args: argparse.Namespace, out: dict[str, Any]) -> None:
    import torch

    from lm_service import models

    torch.set_num_threads(CORES)
    path = models.resolve_lm_path(args.model)
    model, tokenizer = models.load_causal_lm(path, torch.float32, "cpu", Path(args.cache_dir))
    count = 2 if args.quick else 4
    latencies, ttfts = [], []
    started = time.perf_counter()
    for request in requests(count, args.tokens):
        messages = [{"role": m.role, "content": m.content} for m in request.messages]
        ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True,
                                            return_tensors="pt", return_dict=True)
        t0 = time.perf_counter()
        with torch.inference_mode():
            model.generate(**ids, max_new_tokens=1, do_sample=False)
            ttfts.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            model.generate(**ids, max_new_tokens=args.tokens, min_new_tokens=args.tokens,
                           do_sample=False)
        latencies.append(time.perf_counter() - t0)
    wall = sum(latencies)
    del started
    out["modes"]["naive-seq"] = summary(1, count * args.tokens, wall, latencies, ttfts)
    note(f"naive-seq: {out['modes']['naive-seq']}")


def run_llamacpp(args: argparse.Namespace, out: dict[str, Any]) -> None:
    try:
        import llama_cpp
    except ImportError:
        note("llamacpp-*: left out: llama-cpp-python is not installed "
             "(pip install -e '.[bench]')")
        return
    from lm_service import models

    path = models.resolve_lm_path(args.model)
    if path.suffix != ".gguf":
        note("llamacpp-*: left out: the model is not a GGUF file")
        return
    count16 = 16
    llm = llama_cpp.Llama(model_path=str(path), n_ctx=512, n_threads=CORES,
                          n_threads_batch=CORES, verbose=False)
    eos = llm.token_eos()
    prompts = [llm.tokenize(_chatml(r).encode(), add_bos=False, special=True)
               for r in requests(count16, args.tokens)]
    # One at a time.
    count = 2 if args.quick else 4
    latencies, ttfts = [], []
    for prompt in prompts[:count]:
        t0 = time.perf_counter()
        first = _llama_generate(llama_cpp, llm, llm.ctx, [prompt], args.tokens, eos)
        latencies.append(time.perf_counter() - t0)
        ttfts.append(first)
    out["modes"]["llamacpp-seq"] = summary(1, count * args.tokens, sum(latencies), latencies,
                                           ttfts)
    note(f"llamacpp-seq: {out['modes']['llamacpp-seq']}")
    params = llama_cpp.llama_context_default_params()
    params.n_ctx = 256 * count16
    params.n_batch = params.n_ubatch = 512 * 4
    params.n_seq_max = count16
    params.kv_unified = False  # a 256-position cache per sequence
    params.n_threads = params.n_threads_batch = CORES
    ctx = llama_cpp.llama_init_from_model(llm.model, params)
    if not ctx:
        raise RuntimeError("llama.cpp could not create a 16-sequence context")
    t0 = time.perf_counter()
    first = _llama_generate(llama_cpp, llm, ctx, prompts, args.tokens, eos)
    wall = time.perf_counter() - t0
    out["modes"]["llamacpp-16"] = summary(count16, count16 * args.tokens, wall,
                                          [wall] * count16, [first] * count16)
    llama_cpp.llama_free(ctx)
    note(f"llamacpp-16: {out['modes']['llamacpp-16']}")


def _chatml(request: GenerationRequest) -> str:
    text = "".join(f"<|im_start|>{m.role}\n{m.content}<|im_end|>\n" for m in request.messages)
    return text + "<|im_start|>assistant\n"


def _llama_generate(lc: Any, llm: Any, ctx: Any, prompts: list[list[int]], tokens: int,
                    eos: int) -> float:
    """Greedy batched decoding with llama.cpp's own batch API (one sequence per prompt).

    Returns the time to the first token of all sequences.
    """
    import numpy as np

    mem = lc.llama_get_memory(ctx)
    lc.llama_memory_clear(mem, True)
    n_vocab = llm.n_vocab()
    total = sum(len(p) for p in prompts)
    batch = lc.llama_batch_init(max(total, len(prompts)), 0, len(prompts))
    started = time.perf_counter()
    try:
        def fill(entries: list[tuple[int, int, int, bool]]) -> None:
            batch.n_tokens = len(entries)
            for i, (token, pos, seq, want) in enumerate(entries):
                batch.token[i] = token
                batch.pos[i] = pos
                batch.n_seq_id[i] = 1
                batch.seq_id[i][0] = seq
                batch.logits[i] = want

        entries = [(t, j, s, j == len(p) - 1) for s, p in enumerate(prompts)
                   for j, t in enumerate(p)]
        fill(entries)
        if lc.llama_decode(ctx, batch) != 0:
            raise RuntimeError("llama_decode failed")
        rows = [i for i, e in enumerate(entries) if e[3]]
        positions = [len(p) for p in prompts]
        first = 0.0
        for step in range(tokens):
            nxt = []
            for row in rows:
                logits = np.ctypeslib.as_array(lc.llama_get_logits_ith(ctx, row),
                                               shape=(n_vocab,)).copy()
                logits[eos] = -np.inf
                nxt.append(int(logits.argmax()))
            if step == 0:
                first = time.perf_counter() - started
            if step == tokens - 1:
                break
            fill([(t, positions[s], s, True) for s, t in enumerate(nxt)])
            positions = [p + 1 for p in positions]
            if lc.llama_decode(ctx, batch) != 0:
                raise RuntimeError("llama_decode failed")
            rows = list(range(len(prompts)))
        return first
    finally:
        lc.llama_batch_free(batch)


# -- main ----------------------------------------------------------------------------------


def ratios(modes: dict[str, dict[str, float]]) -> dict[str, float]:
    pairs = [("shopkeep-16", "naive-seq"), ("shopkeep-16", "llamacpp-seq"),
             ("shopkeep-16", "llamacpp-16"), ("shopkeep-64", "naive-seq"),
             ("shopkeep-64", "llamacpp-16"), ("shopkeep-1", "naive-seq"),
             ("shopkeep-1", "llamacpp-seq")]
    return {f"{a} / {b}": round(modes[a]["tok_s"] / modes[b]["tok_s"], 2)
            for a, b in pairs if a in modes and b in modes and modes[b]["tok_s"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--quick", action="store_true", help="fewer rounds (about 2 minutes)")
    parser.add_argument("--tokens", type=int, default=64, help="new tokens per request")
    parser.add_argument("--max-batch", type=int, default=64, help="the engine's batch limit")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--model", default=None, help="GGUF or HF folder (default SmolLM2)")
    parser.add_argument("--cache-dir", default=str(ROOT / "var" / "models"))
    parser.add_argument("--no-anchors", action="store_true", help="skip naive and llama.cpp")
    parser.add_argument("--no-traffic", dest="traffic", action="store_false",
                        help="skip the arrival-rate mode")
    parser.add_argument("--compare-static", action="store_true",
                        help="run the arrival-rate mode again with static micro-batches")
    args = parser.parse_args()
    out: dict[str, Any] = {"modes": {}, "rss_mb": None, "cold_start_s": None}
    load_before = os.getloadavg()[0]
    asyncio.run(run_shopkeep(args, out))
    if not args.no_anchors:
        for runner in (run_naive, run_llamacpp):
            try:
                runner(args, out)
            except Exception as exc:  # an anchor that fails is left out, saying why
                note(f"{runner.__name__}: left out: {type(exc).__name__}: {exc}")
    out["ratios"] = ratios(out["modes"])
    out["conditions"] = {"cores": CORES, "loadavg_before": round(load_before, 2),
                         "loadavg_after": round(os.getloadavg()[0], 2),
                         "max_batch": args.max_batch, "tokens": args.tokens,
                         "engine_path": out.pop("engine_path", None)}
    if args.json:
        print(json.dumps(out))
        return 0
    print(f"{'mode':14} {'conc':>5} {'tok/s':>8} {'p50 s':>7} {'p95 s':>7} {'ttft s':>7}")
    for name, m in out["modes"].items():
        print(f"{name:14} {m['concurrency']:5} {m['tok_s']:8.1f} {m['p50_s']:7.2f} "
              f"{m['p95_s']:7.2f} {m['ttft_s']:7.3f}")
    for name, value in out["ratios"].items():
        print(f"ratio {name}: {value}x")
    print(f"cold start to first token: {out['cold_start_s']} s (then the first embedding: "
          f"{out.get('first_embedding_s')} s); peak RSS (both models): {out['rss_mb']} MB")
    if "traffic" in out:
        print(f"sustained at p95 <= 5 s: {out['traffic']['sustained_rps_p95_le_5s']} req/s")
    if "traffic_static" in out:
        print(f"  static micro-batches instead: "
              f"{out['traffic_static']['sustained_rps_p95_le_5s']} req/s")
    print(f"conditions: {out['conditions']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
