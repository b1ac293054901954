"""Pacing arithmetic with a fake clock: per-group and overall limits, and progress reports."""

from __future__ import annotations

from bot.campaigns.pacing import Limits, Pacer, Progress
from bot.events import Platform


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


async def test_telegram_group_gets_at_most_twenty_a_minute() -> None:
    clock = FakeClock()
    pacer = Pacer(clock=clock, sleep=clock.sleep)
    times = []
    for _ in range(45):
        await pacer.wait(Platform.TELEGRAM, "-100500")
        times.append(clock.now)
    for i in range(20, 45):
        assert times[i] - times[i - 20] >= 60.0 - 1e-9
    assert times[19] - times[0] < 2  # the first twenty go out at the overall rate
    assert 119 < times[-1] - times[0] < 125


async def test_overall_rate_spaces_messages_to_different_members() -> None:
    clock = FakeClock()
    pacer = Pacer({Platform.TELEGRAM: Limits(per_second=25, per_destination=20, window_s=60)},
                  clock=clock, sleep=clock.sleep)
    for member in range(100):
        await pacer.wait(Platform.TELEGRAM, f"user:{member}")
    assert abs((clock.now - 1000.0) - 99 / 25) < 1e-6
    assert abs(pacer.waited_s - 99 / 25) < 1e-6


async def test_discord_channel_bucket_is_five_per_five_seconds() -> None:
    clock = FakeClock()
    pacer = Pacer(clock=clock, sleep=clock.sleep)
    times = []
    for _ in range(11):
        await pacer.wait(Platform.DISCORD, "chan")
        times.append(clock.now)
    assert all(times[i] - times[i - 5] >= 5.0 - 1e-9 for i in range(5, 11))


async def test_progress_reports_every_n_and_at_the_end() -> None:
    reports: list[tuple[int, int, int]] = []

    async def report(sent: int, failed: int, total: int) -> None:
        reports.append((sent, failed, total))

    progress = Progress(7, report, every=3)
    for status in ["sent", "sent", "failed", "sent", "skipped", "sent", "sent"]:
        await progress.add(status)
    assert reports == [(2, 1, 7), (4, 1, 7), (5, 1, 7)]
