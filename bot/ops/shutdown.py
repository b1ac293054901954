"""Graceful shutdown: stop taking work, let work in flight finish, exit within a bound."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.app import App

log = logging.getLogger(__name__)

# After the bound, a stuck non-daemon thread (a model step, a blocking socket) could still
# keep the interpreter alive; the watchdog gives the normal exit this long before forcing it.
WATCHDOG_GRACE_S = 5.0
EXIT_CODE_FORCED = 70


async def graceful_stop(app: App, timeout_s: float, hard_exit: bool = False) -> bool:
    """Stop `app` within `timeout_s` seconds.

    Readiness turns to 503 first (load balancers stop routing), then `App.stop()` stops the
    adapters (no new messages), waits for messages in flight and background work, stops the
    features and the LM (which finishes or hands back its queue) and closes storage. What has
    not finished by the deadline is cancelled and logged.

    Args:
        hard_exit: also arm a watchdog that ends the process `WATCHDOG_GRACE_S` after the
            bound if something still holds it (only for the real process, never in tests).

    Returns:
        True when everything stopped in time.
    """
    began = time.monotonic()
    if hard_exit:
        _arm_watchdog(timeout_s + WATCHDOG_GRACE_S)
    from bot.ops.server import OpsFeature

    for feature in app.features:
        if isinstance(feature, OpsFeature):
            feature.drain()
    log.info("stopping: %d message(s) in flight, bound %.1f s", app.router.meter.inflight,
             timeout_s)
    try:
        await asyncio.wait_for(app.stop(), timeout_s)
    except TimeoutError:
        log.error("shutdown bound of %.1f s reached; abandoned what was still running "
                  "(%d message(s) in flight)", timeout_s,
                  app.router.meter.inflight)
        return False
    log.info("stopped cleanly in %.1f s", time.monotonic() - began)
    return True


def _arm_watchdog(after_s: float) -> threading.Timer:
    def force() -> None:
        log.critical("still running %.1f s after the shutdown began; exiting now", after_s)
        logging.shutdown()
        os._exit(EXIT_CODE_FORCED)

    timer = threading.Timer(after_s, force)
    timer.daemon = True  # a clean exit before the deadline must not wait for it
    timer.start()
    return timer
