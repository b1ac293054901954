"""Posts that are not replies and campaign runs reach /metrics from where they happen."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from adapters.console import ConsoleAdapter
from bot.events import Destination, Outbound, Platform
from bot.ops.metrics import METRICS
from bot.outbox import Outbox
from tests.campaigns.conftest import Build, make_feature  # noqa: F401  (fixture)


def _value(registry: CollectorRegistry, name: str, labels: dict[str, str]) -> float:
    return registry.get_sample_value(name, labels) or 0.0


async def test_outbox_posts_are_counted() -> None:
    console = ConsoleAdapter(interactive=False)
    outbox = Outbox()
    outbox.attach(console)
    labels = {"platform": "console", "source": "post"}
    before = _value(METRICS.registry, "shopkeep_messages_out_total", labels)
    await outbox.send(Outbound("Spring sale!", destination=Destination(Platform.CONSOLE, "c")))
    assert _value(METRICS.registry, "shopkeep_messages_out_total", labels) == before + 1


async def test_campaign_runs_are_counted_by_outcome(make_feature: Build) -> None:  # noqa: F811
    feature = await make_feature(start=False)
    labels = {"outcome": "gone"}
    before = _value(METRICS.registry, "shopkeep_campaign_runs_total", labels)
    result = await feature.runner.run("default/deleted", "2026-11-23T10:00:00+00:00")
    assert result.status == "gone"
    assert _value(METRICS.registry, "shopkeep_campaign_runs_total", labels) == before + 1
