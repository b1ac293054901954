"""The in-process engine: one thread owns the models and loops schedule → execute → update.

Each turn of the loop: drop work nobody waits for, embed what is queued (a bounded amount
while answers are being generated, so neither model starves the other and they never race
for the two cores), let waiting requests join the running batch (prefilling their prompts;
a more urgent request may preempt a less urgent one), then run one decode step for every
running request. Requests join and leave between any two steps: continuous batching.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lm_service.api import (
    GenerationRequest,
    GenerationResult,
    LMError,
    LMTimeout,
    LMUnavailable,
)
from lm_service.scheduler import Scheduler, Sink, Ticket, choose_victim

log = logging.getLogger(__name__)

_MIN_PREFIX = 16  # shorter shared prefixes are not worth a copy
EmbedCallback = Callable[[list[list[float]] | BaseException], None]


@dataclass
class EngineConfig:
    """How the engine loads and serves. `None` model paths mean the packaged defaults."""

    model: str | Path | None = None
    embed_model: str | Path | None = None
    dtype: str = "auto"
    threads: int | None = None
    max_batch: int = 16
    max_queue: int = 256
    timeout_s: float = 30.0
    cache_dir: Path = field(default_factory=lambda: Path("var") / "models")
    kv_budget_mb: int = 384  # the KV cache of all running requests together
    prefill_tokens: int = 2048  # most prompt tokens prefilled between two decode steps
    embed_batch: int = 64  # most texts embedded between two decode steps
    generator: bool = True
    embedder: bool = True
    preempt: bool = True
    kernels: bool = True  # build/use the C++ decode attention (needs a C++ compiler once)
    continuous: bool = True  # False: static micro-batches (join only when the batch is empty)
    prefix_cache_tokens: int = 4096  # shared prompt prefixes kept (about 23 KB a token)
    ignore_eos: bool = False  # benchmarks only: every answer runs to max_new_tokens

    def __post_init__(self) -> None:
        self.cache_dir = Path(self.cache_dir)


class _Seq:
    """A request's generation: its prompt, the tokens chosen so far, where its cache ends."""

    def __init__(self, ticket: Ticket, prompt: list[int], prefix: int) -> None:
        self.ticket = ticket
        self.prompt = prompt
        self.prefix = prefix  # leading prompt tokens shared with other requests (cached)
        self.sampler: Any = None
        self.tracker: Any = None
        self.tokens: list[int] = []
        self.position = 0  # cached positions; the next token is written here
        self.next_token = 0
        self.first_token_at: float | None = None
        self.done = False
        self.widest_batch = 0  # the most requests decoded together with this one


class Engine:
    """Loads the models on its own thread and serves generation and embedding requests."""

    def __init__(self, config: EngineConfig) -> None:
        self.config = config
        self.scheduler = Scheduler(config.max_queue)
        self.running: list[_Seq] = []
        self._prefixes: OrderedDict[tuple[int, ...], Any] = OrderedDict()
        self._embeds: deque[tuple[list[str], EmbedCallback]] = deque()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stopping = False
        self._load_error: BaseException | None = None
        self.runner: Any = None
        self.tokenizer: Any = None
        self.embedder: Any = None
        self.end_ids: frozenset[int] = frozenset()
        self.load_seconds = 0.0
        self.governor: Any = None

    # -- life ------------------------------------------------------------------------------

    def start(self, timeout: float | None = None) -> None:
        """Start the thread and wait until the models are loaded.

        Raises:
            LMUnavailable: a model could not be loaded.
        """
        if self._thread is None:
            self._thread = threading.Thread(target=self._main, name="lm-engine", daemon=True)
            self._thread.start()
        if not self._ready.wait(timeout):
            raise LMUnavailable("the LM engine did not load in time")
        if self._load_error is not None:
            raise LMUnavailable(f"the LM engine failed to load: {self._load_error}") from (
                self._load_error
            )

    def stop(self) -> None:
        """Finish the thread; requests still waiting or running fail with `LMUnavailable`."""
        self._stopping = True
        self.scheduler.notify()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and not self._stopping

    # -- requests --------------------------------------------------------------------------

    def submit(self, request: GenerationRequest, sink: Sink) -> Ticket:
        """Queue a generation request; its output goes to `sink` (from the engine thread).

        Raises:
            LMBusy: the queue is full.
            LMUnavailable: the engine is not running or has no generator.
            LMError: the prompt does not fit the model.
        """
        if not self.alive or self.runner is None:
            raise LMUnavailable("the LM engine is not running a generator")
        prompt = self.encode_chat(request)
        limit = self.runner.max_positions
        if len(prompt) + 1 > limit:
            raise LMError(f"the prompt has {len(prompt)} tokens; the model takes {limit}")
        timeout = request.deadline_s if request.deadline_s is not None else self.config.timeout_s
        ticket = Ticket(request=request, sink=sink, deadline=time.monotonic() + timeout)
        ticket.cost = min(len(prompt) + request.max_new_tokens, limit)
        ticket.state = _Seq(ticket, prompt, self._prefix_length(request, prompt))
        return self.scheduler.submit(ticket)

    def embed(self, texts: list[str], done: EmbedCallback) -> None:
        """Queue texts to embed; `done` gets the vectors or an exception (engine thread)."""
        if not self.alive or self.embedder is None:
            raise LMUnavailable("the LM engine is not running an embedder")
        with self._lock:
            self._embeds.append((texts, done))
        self.scheduler.notify()

    def encode_chat(self, request: GenerationRequest) -> list[int]:
        """The prompt token ids: the model's chat template with the assistant turn opened."""
        messages = [{"role": m.role, "content": m.content} for m in request.messages]
        if getattr(self.tokenizer, "chat_template", None):
            ids = self.tokenizer.apply_chat_template(
                messages, add_generation_prompt=True, tokenize=True
            )
            if hasattr(ids, "keys"):
                ids = ids["input_ids"]
            return list(ids)
        text = "".join(f"{m['role']}: {m['content']}\n" for m in messages) + "assistant:"
        return list(self.tokenizer(text)["input_ids"])

    def _prefix_length(self, request: GenerationRequest, prompt: list[int]) -> int:
        """How many leading prompt tokens are the first message alone (the system prompt that
        many requests share): those are prefilled once and copied. 0 when not applicable."""
        if (len(request.messages) < 2 or not hasattr(self.runner, "load_prefix")
                or not getattr(self.tokenizer, "chat_template", None)):
            return 0
        first = request.messages[0]
        head = self.tokenizer.apply_chat_template(
            [{"role": first.role, "content": first.content}], tokenize=True
        )
        if hasattr(head, "keys"):
            head = head["input_ids"]
        size = len(head)
        if _MIN_PREFIX <= size < len(prompt) and prompt[:size] == list(head):
            return size
        return 0

    # -- the thread ------------------------------------------------------------------------

    def _main(self) -> None:
        try:
            self._load()
        except BaseException as exc:
            log.exception("the LM engine failed to load")
            self._load_error = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            while not self._stopping:
                self._turn()
        finally:
            self._shutdown()

    def _load(self) -> None:
        from lm_service import models

        models.tune_process_memory()
        import torch

        from lm_service.threads import ThreadGovernor

        started = time.perf_counter()
        self.governor = ThreadGovernor(models.cpu_count(), self.config.threads,
                                       torch.set_num_threads)
        device = models.choose_device()
        cfg = self.config
        if cfg.generator:
            from lm_service.fallback import RowByRow
            from lm_service.llama import FastLlama

            dtype = models.choose_dtype(cfg.dtype, device)
            path = models.resolve_lm_path(cfg.model)
            folder = models.model_folder(path, dtype, cfg.cache_dir)
            self.tokenizer = models.load_tokenizer(folder)
            self.end_ids = frozenset(models.end_token_ids(folder, self.tokenizer))
            self.runner = FastLlama.from_folder(
                folder, dtype, device, prepared=models.prepared_path(folder, dtype, cfg.cache_dir)
            )
            if (self.runner is not None and device == "cpu" and dtype == torch.bfloat16
                    and cfg.kernels):
                from lm_service.kernels import compiled_kernels

                self.runner.kernels = compiled_kernels(cfg.cache_dir / "kernels")
            if self.runner is None:
                model, _ = models.load_causal_lm(path, dtype, device, cfg.cache_dir)
                self.runner = (FastLlama.from_model(model) if FastLlama.supports(model)
                               else RowByRow(model))
            log.info("LM %s loaded (%s, %s, %s threads, %s)", path.name, device, dtype,
                     self.config.threads or "auto", type(self.runner).__name__)
        if cfg.embedder:
            from lm_service.embedder import Embedder

            self.embedder = Embedder(models.resolve_embed_path(cfg.embed_model), device=device)
        self.load_seconds = time.perf_counter() - started

    def _turn(self) -> None:
        self.governor.tick()
        for ticket in self.scheduler.take_expired():
            if not ticket.cancelled:
                ticket.sink.fail(LMTimeout("the deadline passed while the request waited"))
        self._serve_embeddings(self.config.embed_batch if self.running else None)
        if self.runner is not None:
            try:
                self._admit()
                if self.running:
                    self._step()
            except Exception as exc:  # a failed step must not take the service down
                log.exception("LM step failed; failing the running requests")
                for seq in self.running:
                    seq.ticket.sink.fail(LMError(f"generation failed: {exc}"))
                self.running.clear()
                self.runner.release()
        if not self.running and not self._embeds:
            if self.runner is not None and self.runner_holds_cache():
                self.runner.release()
            self.scheduler.wait(0.25)

    def runner_holds_cache(self) -> bool:
        return bool(getattr(self.runner, "rows_cap", 0) or getattr(self.runner, "caches", None))

    def _shutdown(self) -> None:
        gone = LMUnavailable("the LM engine stopped")
        for seq in self.running:
            seq.ticket.sink.fail(gone)
        self.running.clear()
        for ticket in self.scheduler.drain():
            ticket.sink.fail(gone)
        with self._lock:
            jobs = list(self._embeds)
            self._embeds.clear()
        for _, done in jobs:
            done(gone)

    # -- embeddings ------------------------------------------------------------------------

    def _serve_embeddings(self, limit: int | None) -> None:
        if self.embedder is None:
            return
        jobs: list[tuple[list[str], EmbedCallback]] = []
        count = 0
        with self._lock:
            while self._embeds and (limit is None or not jobs or
                                    count + len(self._embeds[0][0]) <= limit):
                job = self._embeds.popleft()
                jobs.append(job)
                count += len(job[0])
        if not jobs:
            return
        texts = [text for job_texts, _ in jobs for text in job_texts]
        try:
            vectors = self.embedder.embed(texts)
        except Exception as exc:
            log.exception("embedding failed")
            for _, done in jobs:
                done(LMError(f"embedding failed: {exc}"))
            return
        start = 0
        for job_texts, done in jobs:
            done(vectors[start : start + len(job_texts)])
            start += len(job_texts)

    # -- generation ------------------------------------------------------------------------

    def _admit(self) -> None:
        cfg = self.config
        if not cfg.continuous and self.running:
            return
        free = cfg.max_batch - len(self.running)
        if free <= 0 and cfg.preempt:
            head = self.scheduler.head_priority()
            if head is not None:
                victim = choose_victim([s.ticket for s in self.running], head)
                if victim is not None:
                    self._preempt(victim)
                    free = 1
        if free <= 0:
            return
        budget = cfg.kv_budget_mb * 2**20
        per_token = self.runner.bytes_per_token()
        length = max((s.ticket.cost for s in self.running), default=0)
        rows = len(self.running)
        tokens = 0

        def fits(ticket: Ticket) -> bool:
            nonlocal length, rows, tokens
            prompt = _prefill_ids(ticket.state)
            new_length = max(length, ticket.cost)
            size = _round(rows + 1, 8) * _round(new_length, 128) * per_token
            first = rows == 0
            if not first and (size > budget or tokens + len(prompt) > cfg.prefill_tokens):
                return False
            length, rows, tokens = new_length, rows + 1, tokens + len(prompt)
            return True

        tickets = self.scheduler.take(free, fits)
        if tickets:
            self._prefill(tickets)

    def _prefill(self, tickets: list[Ticket]) -> None:
        from lm_service.sampling import Sampler, TextTracker, pick_tokens

        seqs: list[_Seq] = [ticket.state for ticket in tickets]
        for seq in seqs:
            if seq.sampler is None:
                request = seq.ticket.request
                seq.sampler = Sampler(request)
                if request.stop or seq.ticket.sink.wants_deltas:
                    seq.tracker = TextTracker(self.tokenizer, request.stop)
        prompts = [_prefill_ids(seq) for seq in seqs]
        first_row = len(self.running)
        # Room for every running request to finish: the cache grows now, not step by step
        # (each growth copies the whole cache, and old and new copies briefly coexist).
        self.runner.reserve(first_row + len(seqs),
                            max(s.ticket.cost for s in (*self.running, *seqs)))
        cached = self._load_prefixes(first_row, seqs, prompts)
        logits = self.runner.prefill(first_row, prompts, cached)
        fresh = [i for i, seq in enumerate(seqs) if not seq.tokens]
        chosen = pick_tokens(logits[fresh], [seqs[i].sampler for i in fresh]) if fresh else []
        for i, seq in enumerate(seqs):
            seq.position = len(prompts[i])
            self.running.append(seq)
        for i, token in zip(fresh, chosen, strict=True):
            self._accept(seqs[i], token)
        self._retire()

    def _load_prefixes(self, first_row: int, seqs: list[_Seq], prompts: list[list[int]]
                       ) -> list[int] | None:
        """Copy shared prefixes into the new rows (computing the missing ones first, alone,
        in spare rows, so a prefix's cache never depends on what it was batched with)."""
        if not any(seq.prefix for seq in seqs):
            return None
        store = self._prefixes
        missing: dict[tuple[int, ...], None] = {}
        for seq in seqs:
            key = tuple(seq.prompt[: seq.prefix])
            if seq.prefix and key not in store:
                missing[key] = None
        spare = first_row + len(seqs)
        self.runner.reserve(spare + len(missing), max(len(p) for p in prompts))
        if missing:
            self.runner.prefill(spare, [list(key) for key in missing])
            for i, key in enumerate(missing):
                store[key] = self.runner.save_prefix(spare + i, len(key))
        for j, seq in enumerate(seqs):
            if seq.prefix:
                key = tuple(seq.prompt[: seq.prefix])
                self.runner.load_prefix(first_row + j, store[key])
                store.move_to_end(key)
        while sum(len(key) for key in store) > self.config.prefix_cache_tokens and len(store) > 1:
            store.popitem(last=False)
        return [seq.prefix for seq in seqs]

    def _step(self) -> None:
        from lm_service.sampling import pick_tokens

        running = self.running
        logits = self.runner.decode(
            [s.next_token for s in running], [s.position for s in running]
        )
        chosen = pick_tokens(logits, [s.sampler for s in running])
        for seq, token in zip(running, chosen, strict=True):
            seq.position += 1
            seq.widest_batch = max(seq.widest_batch, len(running))
            self._accept(seq, token)
        self._retire()

    def _accept(self, seq: _Seq, token: int) -> None:
        now = time.monotonic()
        if seq.first_token_at is None:
            seq.first_token_at = now
        request = seq.ticket.request
        if token in self.end_ids and not self.config.ignore_eos:
            self._finish(seq, "stop")
            return
        seq.tokens.append(token)
        seq.next_token = token
        tracker = seq.tracker
        if tracker is not None:
            tracker.update(seq.tokens)
            if tracker.stopped:
                self._finish(seq, "stop_string")
                return
            if seq.ticket.sink.wants_deltas:
                delta = tracker.delta()
                if delta:
                    seq.ticket.sink.delta(delta)
        if len(seq.tokens) >= request.max_new_tokens or seq.position + 1 >= (
            self.runner.max_positions
        ):
            self._finish(seq, "length")

    def _finish(self, seq: _Seq, reason: str) -> None:
        seq.done = True
        ticket = seq.ticket
        if seq.tracker is not None:
            if reason != "stop_string":
                seq.tracker.update(seq.tokens)
            if ticket.sink.wants_deltas:
                tail = seq.tracker.delta(final=True)
                if tail:
                    ticket.sink.delta(tail)
            text = seq.tracker.text
        else:
            text = self.tokenizer.decode(seq.tokens, skip_special_tokens=True)
        now = time.monotonic()
        first = seq.first_token_at or now
        ticket.sink.finish(
            GenerationResult(
                text=text,
                prompt_tokens=len(seq.prompt),
                completion_tokens=len(seq.tokens),
                finish_reason=reason,
                latency_s=now - ticket.submitted,
                time_to_first_token_s=first - ticket.submitted,
                batch_size=max(1, seq.widest_batch),
            )
        )

    def _retire(self) -> None:
        """Drop finished, cancelled and expired rows; the last row fills each hole."""
        now = time.monotonic()
        running = self.running
        for i in range(len(running) - 1, -1, -1):
            seq = running[i]
            ticket = seq.ticket
            if not seq.done:
                if ticket.cancelled:
                    pass
                elif ticket.expired(now):
                    ticket.sink.fail(LMTimeout("the deadline passed; the answer was cancelled"))
                else:
                    continue
            self._remove_row(i)

    def _remove_row(self, i: int) -> None:
        running = self.running
        last = len(running) - 1
        if i != last:
            self.runner.move_row(last, i, running[last].position)
            running[i] = running[last]
        running.pop()

    def _preempt(self, index: int) -> None:
        seq = self.running[index]
        self._remove_row(index)
        seq.ticket.state = seq
        self.scheduler.requeue(seq.ticket)


def _prefill_ids(seq: _Seq) -> list[int]:
    """What to prefill: the prompt, and when resuming after preemption everything cached
    before minus the token still to be fed."""
    return seq.prompt + seq.tokens[:-1] if seq.tokens else seq.prompt


def _round(value: int, step: int) -> int:
    return -(-value // step) * step
