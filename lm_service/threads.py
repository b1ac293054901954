"""How many torch threads the engine should use right now.

With the cores to itself, threads = cores is fastest. When other processes take a core, a
parallel region waits for its slowest thread at every one of the ~600 ops of a decode step,
and two threads become several times slower than one (measured here: 2 threads 430 ms per
step, 1 thread 60 ms). So in `auto` mode the governor watches how much CPU the rest of the
machine uses and gives the engine only the cores that are free.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable


def _busy_jiffies() -> tuple[int, int] | None:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    try:
        with open("/proc/stat") as handle:
            fields = handle.readline().split()[1:]
    except OSError:
        return None
    values = [int(v) for v in fields]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    total = sum(values[:8])
    return total - idle, total


class ThreadGovernor:
    """Chooses the engine's thread count every `interval_s` seconds (in `auto` mode).

    Args:
        cores: the cores this process may use.
        fixed: a configured thread count; when given, it is used and never changed.
        apply: sets the thread count (torch.set_num_threads); called only on a change.
    """

    def __init__(
        self,
        cores: int,
        fixed: int | None,
        apply: Callable[[int], None],
        interval_s: float = 1.0,
    ) -> None:
        self.cores = max(1, cores)
        self.fixed = fixed
        self.apply = apply
        self.interval_s = interval_s
        self.threads = fixed or self.cores
        self._last_check = time.monotonic()
        self._last_proc = _busy_jiffies()
        self._last_own = _own_cpu()
        apply(self.threads)

    def tick(self) -> int:
        """Call between steps; returns the thread count in force."""
        if self.fixed is not None or self.cores == 1:
            return self.threads
        now = time.monotonic()
        if now - self._last_check < self.interval_s:
            return self.threads
        proc, own = _busy_jiffies(), _own_cpu()
        if proc is not None and self._last_proc is not None:
            busy = proc[0] - self._last_proc[0]
            total = proc[1] - self._last_proc[1]
            if total > 0:
                machine_busy = self.cores * busy / total  # in cores
                own_busy = (own - self._last_own) / (now - self._last_check)
                others = max(0.0, machine_busy - own_busy)
                self._set(self.choose(others))
        self._last_check, self._last_proc, self._last_own = now, proc, own
        return self.threads

    def choose(self, others: float) -> int:
        """Threads to use when other processes keep `others` cores busy."""
        return max(1, min(self.cores, self.cores - math.ceil(others - 0.3)))

    def _set(self, threads: int) -> None:
        if threads != self.threads:
            self.threads = threads
            self.apply(threads)


def _own_cpu() -> float:
    times = os.times()
    return times.user + times.system
