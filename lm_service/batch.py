"""The running batch: one decode step for every running request, then accept, finish, retire.

Every running request owns one row of the runner's cache; rows 0..n-1 are the running ones.
A request that finishes (or is cancelled, expires or is preempted) hands its row to the last
one, so requests join and leave between any two steps without copying the others' caches.
"""

from __future__ import annotations

import time
from typing import Any

from lm_service.api import GenerationResult, LMError, LMTimeout
from lm_service.scheduler import Scheduler, Ticket


class Sequence:
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

    def prefill_ids(self) -> list[int]:
        """What to prefill: the prompt, and when resuming after preemption everything cached
        before minus the token still to be fed."""
        return self.prompt + self.tokens[:-1] if self.tokens else self.prompt


class RunningBatch:
    """The requests being decoded, in cache-row order, and what one step does to them.

    Args:
        runner: the model runner (`FastLlama` or `RowByRow`).
        tokenizer: decodes the final text of requests that track no text on the way.
        end_ids: tokens that end an answer.
        config: the engine's `EngineConfig` (read live: `ignore_eos` may change).
        scheduler: where preempted requests go back to.
    """

    def __init__(self, runner: Any, tokenizer: Any, end_ids: frozenset[int], config: Any,
                 scheduler: Scheduler) -> None:
        self.runner = runner
        self.tokenizer = tokenizer
        self.end_ids = end_ids
        self.config = config
        self.scheduler = scheduler
        self.seqs: list[Sequence] = []

    def __len__(self) -> int:
        return len(self.seqs)

    def step(self) -> None:
        """One decode step for every running request."""
        from lm_service.sampling import pick_tokens

        running = self.seqs
        logits = self.runner.decode(
            [s.next_token for s in running], [s.position for s in running]
        )
        chosen = pick_tokens(logits, [s.sampler for s in running])
        for seq, token in zip(running, chosen, strict=True):
            seq.position += 1
            seq.widest_batch = max(seq.widest_batch, len(running))
            self.accept(seq, token)
        self.retire()

    def accept(self, seq: Sequence, token: int) -> None:
        """Take the token chosen for `seq`: stream it, or finish the request."""
        now = time.monotonic()
        if seq.first_token_at is None:
            seq.first_token_at = now
        request = seq.ticket.request
        if token in self.end_ids and not self.config.ignore_eos:
            self.finish(seq, "stop")
            return
        seq.tokens.append(token)
        seq.next_token = token
        tracker = seq.tracker
        if tracker is not None:
            tracker.update(seq.tokens)
            if tracker.stopped:
                self.finish(seq, "stop_string")
                return
            if seq.ticket.sink.wants_deltas:
                delta = tracker.delta()
                if delta:
                    seq.ticket.sink.delta(delta)
        if len(seq.tokens) >= request.max_new_tokens or seq.position + 1 >= (
            self.runner.max_positions
        ):
            self.finish(seq, "length")

    def finish(self, seq: Sequence, reason: str) -> None:
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

    def retire(self) -> None:
        """Drop finished, cancelled and expired rows; the last row fills each hole."""
        now = time.monotonic()
        running = self.seqs
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
            self.remove_row(i)

    def remove_row(self, i: int) -> None:
        running = self.seqs
        last = len(running) - 1
        if i != last:
            self.runner.move_row(last, i, running[last].position)
            running[i] = running[last]
        running.pop()

    def preempt(self, index: int) -> None:
        """Put the request of row `index` back in the queue; it resumes where it was."""
        seq = self.seqs[index]
        self.remove_row(index)
        seq.ticket.state = seq
        self.scheduler.requeue(seq.ticket)

    def fail_all(self, error: LMError) -> None:
        """Fail every running request (a step failed, or the engine stops)."""
        for seq in self.seqs:
            seq.ticket.sink.fail(error)
        self.seqs.clear()
