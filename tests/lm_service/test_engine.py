"""The in-process engine on the real SmolLM2-135M: batching, end token, priorities, deadlines,
the bounded queue, streaming, stop strings and seeds."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from lm_service.api import (
    ChatMessage,
    GenerationRequest,
    LMBusy,
    LMTimeout,
    Priority,
)
from lm_service.local import InProcessLMClient

QUESTIONS = [
    "What is the return policy for tents bought online?",
    "Write one line promoting our new hiking boots.",
    "hi",
    "Which sleeping bag keeps a family of four warm when camping in the mountains in winter?",
    "Summarise: the member asked twice about waterproof jackets and once about stoves.",
]


SYSTEM = ("You are the assistant of Trailhead Outfitters, a shop for tents, sleeping bags and "
          "boots. Answer briefly and kindly.")


def ask(text: str, tokens: int = 24, system: str | None = None, **extra: Any
        ) -> GenerationRequest:
    messages = (ChatMessage("user", text),)
    if system:
        messages = (ChatMessage("system", system), *messages)
    return GenerationRequest(messages=messages, max_new_tokens=tokens, **extra)


async def until(condition: Any, within: float = 20.0) -> None:
    """Wait (bounded) until `condition()` holds: a loaded machine may be slow to get there."""
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "the engine did not get there in time"
        await asyncio.sleep(0.01)


async def test_batched_greedy_equals_one_at_a_time(lm: InProcessLMClient) -> None:
    # Some with a shared system prompt (its cache is computed once and copied).
    requests = [ask(q, system=SYSTEM if i % 2 else None) for i, q in enumerate(QUESTIONS)]
    alone = [(await lm.generate(r)).text for r in requests]
    together = await asyncio.gather(*(lm.generate(r) for r in requests))
    assert [r.text for r in together] == alone

    async def late(i: int) -> str:  # joining a batch that is already decoding
        await asyncio.sleep(0.15 * i)
        return (await lm.generate(requests[i])).text

    assert list(await asyncio.gather(*(late(i) for i in range(len(requests))))) == alone


async def test_shared_system_prompt_is_prefilled_once(lm: InProcessLMClient) -> None:
    system = SYSTEM + " Today is a sale day."
    first = await lm.generate(ask(QUESTIONS[0], tokens=8, system=system))
    prefixes = len(lm.engine.admission.prefixes)
    second = await lm.generate(ask(QUESTIONS[1], tokens=8, system=system))
    assert len(lm.engine.admission.prefixes) == prefixes  # the second reused the first's
    assert first.text and second.text and first.prompt_tokens > 30


async def test_generation_stops_at_the_end_token(lm: InProcessLMClient) -> None:
    result = await lm.generate(ask("Say hello.", tokens=200))
    assert result.finish_reason == "stop"
    assert 0 < result.completion_tokens < 200
    assert "<|im_end|>" not in result.text and result.text.strip()


async def test_length_limit(lm: InProcessLMClient) -> None:
    result = await lm.generate(ask(QUESTIONS[3], tokens=5))
    assert result.finish_reason == "length" and result.completion_tokens == 5
    assert result.prompt_tokens > 10 and result.time_to_first_token_s <= result.latency_s


async def test_stream_deltas_add_up_to_the_answer(lm: InProcessLMClient) -> None:
    request = ask(QUESTIONS[0], tokens=20)
    parts = [part async for part in lm.stream(request)]
    assert len(parts) > 3
    assert "".join(parts) == (await lm.generate(request)).text


async def test_stop_string_cuts_the_answer(lm: InProcessLMClient) -> None:
    question = QUESTIONS[0]
    full = (await lm.generate(ask(question, tokens=30))).text
    stop = full[len(full) // 2 : len(full) // 2 + 4]
    result = await lm.generate(ask(question, tokens=30, stop=(stop,)))
    assert result.finish_reason == "stop_string"
    assert result.text == full[: full.index(stop)]
    streamed = "".join([p async for p in lm.stream(ask(question, tokens=30, stop=(stop,)))])
    assert streamed == result.text


async def test_seeded_sampling_repeats_itself(lm: InProcessLMClient) -> None:
    def request(seed: int) -> GenerationRequest:
        return ask(QUESTIONS[1], tokens=16, temperature=0.9, top_p=0.9, seed=seed)

    first, again, other = await asyncio.gather(
        lm.generate(request(7)), lm.generate(request(7)), lm.generate(request(8))
    )
    assert first.text == again.text
    assert first.text != other.text


async def test_more_urgent_requests_run_first(lm: InProcessLMClient, engine_config: Any) -> None:
    engine_config.max_batch = 1
    engine_config.preempt = False
    engine_config.ignore_eos = True  # the blocker must not end early on its own
    finished: list[str] = []
    blocking = asyncio.Event()

    async def run(name: str, priority: Priority, tokens: int) -> None:
        await lm.generate(ask(QUESTIONS[3], tokens=tokens, priority=priority))
        finished.append(name)

    async def block() -> None:
        async for _ in lm.stream(ask(QUESTIONS[3], tokens=48, priority=Priority.BACKGROUND)):
            blocking.set()
        finished.append("blocker")

    blocker = asyncio.create_task(block())
    # The three below are queued while the blocker holds the only slot (decoding has begun
    # and dozens of steps remain), whatever the machine's speed.
    await blocking.wait()
    waiting = [asyncio.create_task(run(name, priority, 4)) for name, priority in [
        ("summary", Priority.BACKGROUND), ("campaign", Priority.CAMPAIGN),
        ("member", Priority.INTERACTIVE)]]
    await asyncio.gather(blocker, *waiting)
    assert finished == ["blocker", "member", "campaign", "summary"]


async def test_a_member_preempts_a_profile_summary(
    lm: InProcessLMClient, engine_config: Any
) -> None:
    engine_config.max_batch = 1
    engine_config.ignore_eos = True  # the summary surely runs all its tokens
    slow = asyncio.create_task(lm.generate(ask(QUESTIONS[4], tokens=150,
                                               priority=Priority.BACKGROUND)))
    await asyncio.sleep(0.3)
    member = await lm.generate(ask("hi", tokens=6))
    assert not slow.done()  # the member did not wait for the summary to finish
    summary = await slow
    assert summary.completion_tokens == 150  # resumed where it was, not lost
    assert member.latency_s < summary.latency_s


async def test_deadline_cancels_running_work(lm: InProcessLMClient) -> None:
    started = time.monotonic()
    with pytest.raises(LMTimeout):
        await lm.generate(ask(QUESTIONS[3], tokens=2000, deadline_s=0.8))
    assert time.monotonic() - started < 5
    await asyncio.sleep(0.1)
    assert lm.engine.running == []  # the slot was given back


async def test_deadline_cancels_waiting_work(lm: InProcessLMClient, engine_config: Any) -> None:
    engine_config.max_batch = 1
    engine_config.preempt = False
    blocker = asyncio.create_task(lm.generate(ask(QUESTIONS[3], tokens=30)))
    await until(lambda: lm.engine.running)
    with pytest.raises(LMTimeout):
        await lm.generate(ask("hi", tokens=4, deadline_s=0.3))
    await blocker


async def test_abandoned_request_frees_its_slot(lm: InProcessLMClient) -> None:
    task = asyncio.create_task(lm.generate(ask(QUESTIONS[3], tokens=2000)))
    await asyncio.sleep(0.5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    for _ in range(50):
        if not lm.engine.running:
            break
        await asyncio.sleep(0.05)
    assert lm.engine.running == []


async def test_full_queue_answers_busy(lm: InProcessLMClient, engine_config: Any) -> None:
    engine_config.max_batch = 1
    engine_config.preempt = False
    lm.engine.scheduler.max_queue = 2
    engine_config.ignore_eos = True  # the blocker holds the only slot for all its tokens
    blocker = asyncio.create_task(lm.generate(ask(QUESTIONS[3], tokens=60)))
    await until(lambda: lm.engine.running)  # admitted: it no longer counts as waiting
    queued = [asyncio.create_task(lm.generate(ask("hi", tokens=2))) for _ in range(2)]
    await until(lambda: len(lm.engine.scheduler) == 2)
    with pytest.raises(LMBusy):
        await lm.generate(ask("hi", tokens=2))
    await asyncio.gather(blocker, *queued)
