"""Build a whole Shopkeep app on the test Redis, the way `shopkeep run` does."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

from bot.app import App
from bot.ports import Adapter
from bot.settings import load_settings
from lm_service.api import LMClient


@contextlib.asynccontextmanager
async def running_app(redis_url: str, data_dir: Path, lm: LMClient,
                      adapters: Sequence[Adapter] = (), **settings: Any) -> AsyncIterator[App]:
    """Start an App (demo shop off unless asked) and stop it afterwards."""
    settings.setdefault("demo_shop", False)
    app = App(load_settings(redis_url=redis_url, data_dir=data_dir, **settings),
              adapters=adapters, lm=lm)
    await app.start()
    try:
        yield app
    finally:
        await app.stop()
