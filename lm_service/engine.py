"""The in-process engine: one thread owns the models and loops schedule → execute → update.

Each turn of the loop: drop work nobody waits for, embed what is queued (a bounded amount
while answers are being generated, so neither model starves the other and they never race
for the two cores), let waiting requests join the running batch (`admission`: prefilling
their prompts; a more urgent request may preempt a less urgent one), then run one decode step
for every running request (`batch`). Requests join and leave between any two steps:
continuous batching.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lm_service.admission import Admission, prefix_length
from lm_service.api import (
    GenerationRequest,
    LMError,
    LMTimeout,
    LMUnavailable,
)
from lm_service.batch import RunningBatch, Sequence
from lm_service.scheduler import Scheduler, Sink, Ticket

log = logging.getLogger(__name__)

EmbedCallback = Callable[[list[list[float]] | BaseException], None]
# The embedder loads after the generator (the first answer does not wait for it): as soon as
# an embedding is asked for, or once the engine has had nothing to do for this long.
_EMBEDDER_IDLE_S = 0.5


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
    kernels: bool = True  # build/use the C++ kernels, lm_service/csrc (needs a C++ compiler once)
    continuous: bool = True  # False: static micro-batches (join only when the batch is empty)
    prefix_cache_tokens: int = 4096  # shared prompt prefixes kept (about 23 KB a token)
    ignore_eos: bool = False  # benchmarks only: every answer runs to max_new_tokens

    def __post_init__(self) -> None:
        self.cache_dir = Path(self.cache_dir)


class Engine:
    """Loads the models on its own thread and serves generation and embedding requests."""

    def __init__(self, config: EngineConfig) -> None:
        self.config = config
        self.scheduler = Scheduler(config.max_queue)
        self.batch: RunningBatch | None = None
        self.admission: Admission | None = None
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
        self.embedder_load_seconds = 0.0
        self.governor: Any = None
        self._embedder_path: Path | None = None  # set while the embedder waits to be loaded
        self._embedder_error: BaseException | None = None
        self._busy_at = 0.0

    @property
    def running(self) -> list[Sequence]:
        """The requests being decoded, in cache-row order."""
        return self.batch.seqs if self.batch is not None else []

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
        shared = prefix_length(self.runner, self.tokenizer, request, prompt)
        ticket.state = Sequence(ticket, prompt, shared)
        return self.scheduler.submit(ticket)

    def embed(self, texts: list[str], done: EmbedCallback) -> None:
        """Queue texts to embed; `done` gets the vectors or an exception (engine thread).

        Texts queued while the embedder still loads wait for it (the first message after a
        start is served like the hundredth); the caller's own timeout bounds the wait.
        """
        if self._embedder_error is not None:
            raise LMUnavailable(f"the embedder failed to load: {self._embedder_error}")
        if not self.alive or (self.embedder is None and self._embedder_path is None):
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
        from lm_service.loading import load_models

        cfg = self.config
        defer = cfg.generator and cfg.embedder
        loaded = load_models(cfg, defer_embedder=defer)
        if defer:
            self._embedder_path = models.resolve_embed_path(cfg.embed_model)
        self._busy_at = time.monotonic()
        self.governor = loaded.governor
        self.runner, self.tokenizer, self.end_ids = (loaded.runner, loaded.tokenizer,
                                                     loaded.end_ids)
        self.embedder = loaded.embedder
        if self.runner is not None:
            self.batch = RunningBatch(self.runner, self.tokenizer, self.end_ids, self.config,
                                      self.scheduler)
            self.admission = Admission(self.batch, self.scheduler, self.config)
        self.load_seconds = loaded.seconds

    def _turn(self) -> None:
        self.governor.tick()
        if self._embedder_path is not None:
            self._maybe_load_embedder()
        for ticket in self.scheduler.take_expired():
            if not ticket.cancelled:
                ticket.sink.fail(LMTimeout("the deadline passed while the request waited"))
        self._serve_embeddings(self.config.embed_batch if self.running else None)
        batch, admission = self.batch, self.admission
        if batch is not None and admission is not None:
            try:
                admission.admit()
                if batch.seqs:
                    batch.step()
            except Exception as exc:  # a failed step must not take the service down
                log.exception("LM step failed; failing the running requests")
                batch.fail_all(LMError(f"generation failed: {exc}"))
                self.runner.release()
        if not self.running and not self._embeds:
            if self.runner is not None and self.runner_holds_cache():
                self.runner.release()
            self.scheduler.wait(0.25)

    def runner_holds_cache(self) -> bool:
        return bool(getattr(self.runner, "rows_cap", 0) or getattr(self.runner, "caches", None))

    def _shutdown(self) -> None:
        gone = LMUnavailable("the LM engine stopped")
        if self.batch is not None:
            self.batch.fail_all(gone)
        for ticket in self.scheduler.drain():
            ticket.sink.fail(gone)
        with self._lock:
            jobs = list(self._embeds)
            self._embeds.clear()
        for _, done in jobs:
            done(gone)

    # -- embeddings ------------------------------------------------------------------------

    def _maybe_load_embedder(self) -> None:
        now = time.monotonic()
        if self.running or len(self.scheduler):
            self._busy_at = now
        if not self._embeds and now - self._busy_at < _EMBEDDER_IDLE_S:
            return
        from lm_service.loading import load_embedder

        path = self._embedder_path
        assert path is not None
        started = time.perf_counter()
        # `embed()` runs on other threads and accepts work while either the path or the
        # embedder is set: the path is cleared only after the outcome is known.
        try:
            self.embedder = load_embedder(path)
        except Exception as exc:
            log.exception("the embedder failed to load")
            self._embedder_error = exc
        finally:
            self._embedder_path = None
        self.embedder_load_seconds = time.perf_counter() - started
        self._fail_embeds_without_embedder()

    def _fail_embeds_without_embedder(self) -> None:
        """After a failed load, what was queued (even in the instant of the failure) fails."""
        if self.embedder is not None or self._embedder_error is None:
            return
        error = LMUnavailable(f"the embedder failed to load: {self._embedder_error}")
        with self._lock:
            jobs = list(self._embeds)
            self._embeds.clear()
        for _, done in jobs:
            done(error)

    def _serve_embeddings(self, limit: int | None) -> None:
        if self.embedder is None:
            self._fail_embeds_without_embedder()
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
