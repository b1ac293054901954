"""Admission: which waiting requests join the running batch, and prefilling their prompts.

Between two decode steps, waiting requests join while the cache budget and the prefill budget
allow (the first always joins); a more urgent request may preempt a less urgent running one.
Prompts that begin with the same first message (a shared system prompt) have that prefix
computed once, kept, and copied into each new row.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from lm_service.api import GenerationRequest
from lm_service.batch import RunningBatch, Sequence
from lm_service.scheduler import Scheduler, Ticket, choose_victim

_MIN_PREFIX = 16  # shorter shared prefixes are not worth a copy


class Admission:
    """Moves requests from the scheduler into the running batch.

    Args:
        batch: the running batch (its runner holds the cache).
        scheduler: the waiting requests.
        config: the engine's `EngineConfig` (read live: tests and benchmarks change it).
    """

    def __init__(self, batch: RunningBatch, scheduler: Scheduler, config: Any) -> None:
        self.batch = batch
        self.scheduler = scheduler
        self.config = config
        self.prefixes: OrderedDict[tuple[int, ...], Any] = OrderedDict()

    def admit(self) -> None:
        """Let waiting requests join (prefilled now), preempting one if that is due."""
        cfg = self.config
        running = self.batch.seqs
        if not cfg.continuous and running:
            return
        free = cfg.max_batch - len(running)
        if free <= 0 and cfg.preempt:
            head = self.scheduler.head_priority()
            if head is not None:
                victim = choose_victim([s.ticket for s in running], head)
                if victim is not None:
                    self.batch.preempt(victim)
                    free = 1
        if free <= 0:
            return
        budget = cfg.kv_budget_mb * 2**20
        per_token = self.batch.runner.bytes_per_token()
        length = max((s.ticket.cost for s in running), default=0)
        rows = len(running)
        tokens = 0

        def fits(ticket: Ticket) -> bool:
            nonlocal length, rows, tokens
            prompt = ticket.state.prefill_ids()
            new_length = max(length, ticket.cost)
            size = _round(rows + 1, 8) * _round(new_length, 128) * per_token
            first = rows == 0
            if not first and (size > budget or tokens + len(prompt) > cfg.prefill_tokens):
                return False
            length, rows, tokens = new_length, rows + 1, tokens + len(prompt)
            return True

        tickets = self.scheduler.take(free, fits)
        if tickets:
            self.prefill(tickets)

    def prefill(self, tickets: list[Ticket]) -> None:
        """Prefill the requests' prompts into new rows and take their first tokens."""
        from lm_service.sampling import Sampler, TextTracker, pick_tokens

        batch, runner = self.batch, self.batch.runner
        seqs: list[Sequence] = [ticket.state for ticket in tickets]
        for seq in seqs:
            if seq.sampler is None:
                request = seq.ticket.request
                seq.sampler = Sampler(request)
                if request.stop or seq.ticket.sink.wants_deltas:
                    seq.tracker = TextTracker(batch.tokenizer, request.stop)
        prompts = [seq.prefill_ids() for seq in seqs]
        first_row = len(batch.seqs)
        # Room for every running request to finish: the cache grows now, not step by step
        # (each growth copies the whole cache, and old and new copies briefly coexist).
        runner.reserve(first_row + len(seqs),
                       max(s.ticket.cost for s in (*batch.seqs, *seqs)))
        cached = self._load_prefixes(first_row, seqs, prompts)
        logits = runner.prefill(first_row, prompts, cached)
        fresh = [i for i, seq in enumerate(seqs) if not seq.tokens]
        chosen = pick_tokens(logits[fresh], [seqs[i].sampler for i in fresh]) if fresh else []
        for i, seq in enumerate(seqs):
            seq.position = len(prompts[i])
            batch.seqs.append(seq)
        for i, token in zip(fresh, chosen, strict=True):
            batch.accept(seqs[i], token)
        batch.retire()

    def _load_prefixes(self, first_row: int, seqs: list[Sequence], prompts: list[list[int]]
                       ) -> list[int] | None:
        """Copy shared prefixes into the new rows (computing the missing ones first, alone,
        in spare rows, so a prefix's cache never depends on what it was batched with)."""
        if not any(seq.prefix for seq in seqs):
            return None
        runner, store = self.batch.runner, self.prefixes
        missing: dict[tuple[int, ...], None] = {}
        for seq in seqs:
            key = tuple(seq.prompt[: seq.prefix])
            if seq.prefix and key not in store:
                missing[key] = None
        spare = first_row + len(seqs)
        runner.reserve(spare + len(missing), max(len(p) for p in prompts))
        if missing:
            runner.prefill(spare, [list(key) for key in missing])
            for i, key in enumerate(missing):
                store[key] = runner.save_prefix(spare + i, len(key))
        for j, seq in enumerate(seqs):
            if seq.prefix:
                key = tuple(seq.prompt[: seq.prefix])
                runner.load_prefix(first_row + j, store[key])
                store.move_to_end(key)
        while sum(len(key) for key in store) > self.config.prefix_cache_tokens and len(store) > 1:
            store.popitem(last=False)
        return [seq.prefix for seq in seqs]


def prefix_length(runner: Any, tokenizer: Any, request: GenerationRequest,
                  prompt: list[int]) -> int:
    """How many leading prompt tokens are the first message alone (the system prompt that
    many requests share): those are prefilled once and copied. 0 when not applicable."""
    if (len(request.messages) < 2 or not hasattr(runner, "load_prefix")
            or not getattr(tokenizer, "chat_template", None)):
        return 0
    first = request.messages[0]
    head = tokenizer.apply_chat_template(
        [{"role": first.role, "content": first.content}], tokenize=True
    )
    if hasattr(head, "keys"):
        head = head["input_ids"]
    size = len(head)
    if _MIN_PREFIX <= size < len(prompt) and prompt[:size] == list(head):
        return size
    return 0


def _round(value: int, step: int) -> int:
    return -(-value // step) * step
