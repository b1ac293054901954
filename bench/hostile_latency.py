"""How long another member waits while someone sends a 100 kB hostile message.

The command pipeline (router, tenancy, built-in commands, redaction for observers) runs on a
real Redis; one member sends a 100 kB message built to make patterns backtrack while another
member runs `/help`. The report gives the member's `/help` latency alone and beside the
hostile message (median and worst of `--rounds`), and the CPU the hostile message cost —
the issue's figure was 16.5 s of waiting with the old email pattern; the goal is < 100 ms.

    python bench/hostile_latency.py --rounds 20
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the test support (Redis server, pipeline) lives in tests/

from bot.events import Inbound, MemberRef, Platform, Privilege  # noqa: E402
from bot.safety.pii import redact  # noqa: E402
from tests.faults.support import CommandPipeline  # noqa: E402
from tests.support.redis_server import RedisServer  # noqa: E402

HOSTILE = {
    "a-a-a": "a-" * 50_000,
    "dots": "." * 100_000,
    "at signs": "a@" * 50_000,
    "digits": "1 " * 50_000,
    "mixed": ("x" * 60 + "@" + "y." * 20 + "1-" * 10) * 700,
}


class Spy:
    """An observer, as profiles are: it receives the (cut, redacted) text."""

    async def observe(self, inbound: Inbound, merchant: str) -> None:
        return None


def _inbound(user: str, text: str) -> Inbound:
    return Inbound(platform=Platform.TELEGRAM, member=MemberRef(Platform.TELEGRAM, user, user),
                   text=text, privilege=Privilege.MEMBER, mentions_bot=False)


async def _help(pipeline: CommandPipeline) -> float:
    start = time.perf_counter()
    await pipeline.handle(_inbound("2", "/help"))
    return time.perf_counter() - start


async def main(rounds: int) -> None:
    server = RedisServer()
    server.start()
    pipeline = CommandPipeline(server.url)
    pipeline.router.observers.append(Spy())
    await pipeline.start()
    try:
        await _help(pipeline)  # warm
        alone = [await _help(pipeline) for _ in range(rounds)]
        print(f"load average {os.getloadavg()[0]:.2f}; /help alone: median "
              f"{statistics.median(alone) * 1000:.1f} ms, worst {max(alone) * 1000:.1f} ms")
        for name, text in HOSTILE.items():
            beside: list[float] = []
            cpu: list[float] = []
            for _ in range(rounds):
                start = time.process_time()
                # Both arrive together, the hostile one first: the member's wait runs from
                # arrival to answer, whatever the hostile one holds the event loop for.
                arrived = time.perf_counter()
                hostile = asyncio.create_task(pipeline.handle(_inbound("1", text)))
                member = asyncio.create_task(pipeline.handle(_inbound("2", "/help")))
                await member
                beside.append(time.perf_counter() - arrived)
                await hostile
                await pipeline.router.drain()
                cpu.append(time.process_time() - start)
            raw = time.process_time()
            redact(text)
            raw = time.process_time() - raw
            print(f"{name:9} ({len(text) // 1000} kB): /help beside it median "
                  f"{statistics.median(beside) * 1000:.1f} ms, worst {max(beside) * 1000:.1f} "
                  f"ms; both messages {statistics.median(cpu) * 1000:.1f} ms CPU; redacting "
                  f"all 100 kB (no cut) {raw * 1000:.1f} ms")
    finally:
        await pipeline.stop()
        server.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    asyncio.run(main(parser.parse_args().rounds))
