"""bench/load.py itself: a short run through the real adapters and stand-ins accounts for
every message and reply (timings are for the benchmark, not for tests)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

from lm_service.api import LMClient

BENCH = Path(__file__).resolve().parents[2] / "bench" / "load.py"


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("shopkeep_bench_load", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


async def test_a_short_load_run_through_the_stand_ins_loses_nothing(
        redis_sync: object, lm_client: LMClient) -> None:
    bench = _bench()
    args = bench.parse_args(["--duration", "4", "--chatter-rate", "4", "--question-rate", "1",
                             "--members", "20", "--groups", "3", "--grace", "60"])
    result = await bench.run(args, lm=lm_client)
    assert result["messages_sent"] == result["messages_handled"] > 0
    assert result["messages_lost_inbound"] == 0
    assert result["questions_sent"] == result["replies"] > 0
    assert result["lost_replies"] == 0 and result["duplicated_replies"] == 0
    assert result["http_429s"] == 0
    assert sum(result["outcomes"].values()) == result["messages_handled"]
    assert result["outcomes"].get("silent", 0) == result["messages_sent"] - result[
        "questions_sent"]  # chatter is read, not answered
    assert result["rss_peak_mb"] > 0 and result["latency_p50_s"] is not None
    json.dumps(result)  # what --json prints
