"""The waiting room in front of the engine: priorities, deadlines, a bounded queue (no torch).

The engine thread asks it which requests join the running batch between two decode steps;
callers on any thread submit and cancel. It is plain Python so it can be tested alone.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from lm_service.api import GenerationRequest, LMBusy, Priority


class Sink(Protocol):
    """Where a request's output goes; called from the engine thread."""

    wants_deltas: bool

    def delta(self, text: str) -> None: ...

    def finish(self, result: Any) -> None: ...

    def fail(self, error: BaseException) -> None: ...


@dataclass(eq=False)
class Ticket:
    """One request's place in the service, from submission to its answer."""

    request: GenerationRequest
    sink: Sink
    deadline: float  # time.monotonic() after which nobody waits any more
    submitted: float = field(default_factory=time.monotonic)
    seq: int = 0
    cost: int = 0  # tokens the request may occupy in the cache (prompt + new)
    cancelled: bool = False
    state: Any = None  # the engine's own bookkeeping (tokens so far, when preempted)

    @property
    def priority(self) -> Priority:
        return self.request.priority

    def cancel(self) -> None:
        """Nobody waits for this answer any more; the engine drops it at its next step."""
        self.cancelled = True

    def expired(self, now: float) -> bool:
        return now >= self.deadline


class Scheduler:
    """A bounded priority queue: lower `Priority` first, then first come first served.

    Args:
        max_queue: how many requests may wait; one more raises `LMBusy`.
        clock: the monotonic clock (tests pass their own).
    """

    def __init__(self, max_queue: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_queue = max_queue
        self.clock = clock
        self._heap: list[tuple[int, int, Ticket]] = []
        self._order = itertools.count()
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)

    def __len__(self) -> int:
        with self._lock:
            return len(self._heap)

    def submit(self, ticket: Ticket) -> Ticket:
        """Queue a request.

        Raises:
            LMBusy: the queue already holds `max_queue` requests.
        """
        with self._lock:
            if len(self._heap) >= self.max_queue:
                raise LMBusy(f"the LM queue is full ({self.max_queue} requests waiting)")
            ticket.seq = next(self._order)
            heapq.heappush(self._heap, (int(ticket.priority), ticket.seq, ticket))
            self._wake.notify_all()
        return ticket

    def requeue(self, ticket: Ticket) -> None:
        """Put back a preempted request ahead of later ones of its priority (never busy)."""
        with self._lock:
            heapq.heappush(self._heap, (int(ticket.priority), ticket.seq, ticket))
            self._wake.notify_all()

    def notify(self) -> None:
        """Wake a `wait()` (new side work, or shutting down)."""
        with self._lock:
            self._wake.notify_all()

    def wait(self, timeout: float) -> None:
        """Block until something is submitted, `notify()` is called, or `timeout` passes."""
        with self._lock:
            if not self._heap:
                self._wake.wait(timeout)

    def head_priority(self) -> Priority | None:
        """The priority of the request that would be taken next, if any."""
        with self._lock:
            self._drop_cancelled()
            return Priority(self._heap[0][0]) if self._heap else None

    def take_expired(self) -> list[Ticket]:
        """Remove and return waiting requests that were cancelled or whose deadline passed."""
        now = self.clock()
        with self._lock:
            gone = [t for _, _, t in self._heap if t.cancelled or t.expired(now)]
            if gone:
                self._heap = [e for e in self._heap if not (e[2].cancelled or e[2].expired(now))]
                heapq.heapify(self._heap)
        return gone

    def take(self, slots: int, fits: Callable[[Ticket], bool]) -> list[Ticket]:
        """Pop up to `slots` requests in priority order while `fits(ticket)` says yes.

        Stops at the first that does not fit, so a large request is not overtaken forever.
        """
        taken: list[Ticket] = []
        with self._lock:
            self._drop_cancelled()
            while self._heap and len(taken) < slots:
                ticket = self._heap[0][2]
                if ticket.cancelled:
                    heapq.heappop(self._heap)
                    continue
                if not fits(ticket):
                    break
                heapq.heappop(self._heap)
                taken.append(ticket)
        return taken

    def drain(self) -> list[Ticket]:
        """Remove and return everything waiting (at shutdown)."""
        with self._lock:
            tickets = [t for _, _, t in sorted(self._heap)]
            self._heap.clear()
        return tickets

    def _drop_cancelled(self) -> None:
        while self._heap and self._heap[0][2].cancelled:
            heapq.heappop(self._heap)


def choose_victim(running: list[Ticket], waiting: Priority) -> int | None:
    """Index of the running request to preempt for a `waiting` one, or None.

    Only a strictly less urgent request is preempted: the least urgent, and among those the
    one that started last (it has the least work to lose).
    """
    best: int | None = None
    for i, ticket in enumerate(running):
        if ticket.priority <= waiting:
            continue
        if best is None or (ticket.priority, ticket.seq) >= (
            running[best].priority, running[best].seq
        ):
            best = i
    return best
