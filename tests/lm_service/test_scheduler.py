"""The waiting room without a model: priorities, first come first served, bounds, deadlines."""

from __future__ import annotations

from typing import Any

import pytest

from lm_service.api import ChatMessage, GenerationRequest, LMBusy, Priority
from lm_service.scheduler import Scheduler, Ticket, choose_victim


class _Sink:
    wants_deltas = False

    def delta(self, text: str) -> None: ...

    def finish(self, result: Any) -> None: ...

    def fail(self, error: BaseException) -> None: ...


def _ticket(priority: Priority, deadline: float = 100.0, name: str = "") -> Ticket:
    request = GenerationRequest(messages=(ChatMessage("user", name),), priority=priority)
    return Ticket(request=request, sink=_Sink(), deadline=deadline)


def test_more_urgent_first_then_first_come() -> None:
    scheduler = Scheduler(max_queue=10)
    order = [(Priority.BACKGROUND, "b1"), (Priority.CAMPAIGN, "c1"), (Priority.INTERACTIVE, "i1"),
             (Priority.BACKGROUND, "b2"), (Priority.INTERACTIVE, "i2")]
    for priority, name in order:
        scheduler.submit(_ticket(priority, name=name))
    taken = scheduler.take(10, lambda t: True)
    assert [t.request.messages[0].content for t in taken] == ["i1", "i2", "c1", "b1", "b2"]


def test_full_queue_is_busy() -> None:
    scheduler = Scheduler(max_queue=2)
    scheduler.submit(_ticket(Priority.INTERACTIVE))
    scheduler.submit(_ticket(Priority.INTERACTIVE))
    with pytest.raises(LMBusy):
        scheduler.submit(_ticket(Priority.INTERACTIVE))
    scheduler.take(1, lambda t: True)
    scheduler.submit(_ticket(Priority.INTERACTIVE))  # room again


def test_expired_and_cancelled_leave_the_queue() -> None:
    now = [0.0]
    scheduler = Scheduler(max_queue=10, clock=lambda: now[0])
    late = scheduler.submit(_ticket(Priority.INTERACTIVE, deadline=1.0))
    gone = scheduler.submit(_ticket(Priority.INTERACTIVE, deadline=50.0))
    kept = scheduler.submit(_ticket(Priority.CAMPAIGN, deadline=50.0))
    gone.cancel()
    now[0] = 2.0
    assert set(scheduler.take_expired()) == {late, gone}
    assert scheduler.take(10, lambda t: True) == [kept]


def test_take_stops_at_the_first_that_does_not_fit() -> None:
    scheduler = Scheduler(max_queue=10)
    big, small = _ticket(Priority.INTERACTIVE), _ticket(Priority.INTERACTIVE)
    big.cost, small.cost = 1000, 10
    scheduler.submit(big)
    scheduler.submit(small)
    assert scheduler.take(5, lambda t: t.cost < 100) == []  # the small one may not overtake
    assert scheduler.take(5, lambda t: True) == [big, small]


def test_requeued_ticket_keeps_its_place() -> None:
    scheduler = Scheduler(max_queue=1)
    first = scheduler.submit(_ticket(Priority.CAMPAIGN))
    scheduler.take(1, lambda t: True)
    second = scheduler.submit(_ticket(Priority.CAMPAIGN))
    scheduler.requeue(first)  # never busy, and ahead of the later one
    assert scheduler.take(5, lambda t: True) == [first, second]


def test_victim_is_the_least_urgent_latest() -> None:
    running = [_ticket(Priority.CAMPAIGN), _ticket(Priority.BACKGROUND),
               _ticket(Priority.BACKGROUND), _ticket(Priority.INTERACTIVE)]
    for i, ticket in enumerate(running):
        ticket.seq = i
    assert choose_victim(running, Priority.INTERACTIVE) == 2
    assert choose_victim(running, Priority.CAMPAIGN) == 2
    assert choose_victim(running, Priority.BACKGROUND) is None
    assert choose_victim(running[3:], Priority.INTERACTIVE) is None
