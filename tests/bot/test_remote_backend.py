"""`SHOPKEEP_LM_BACKEND=remote` on the embedded store: the bot starts, and an lm-worker on the
same Redis answers its requests."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from adapters.console import ConsoleAdapter
from bot.app import App
from bot.settings import load_settings
from lm_service.worker import run_worker


async def test_remote_backend_shares_the_embedded_store_with_a_worker(
        tmp_path: Path, lm_client: object) -> None:
    model_cache = Path(os.environ.get("SHOPKEEP_TEST_MODEL_CACHE", "var/test-models")).resolve()
    settings = load_settings(data_dir=tmp_path / "var", demo_shop=False, lm_backend="remote",
                             lm_max_batch=4)
    console = ConsoleAdapter(interactive=False)
    app = App(settings, adapters=[console])
    await app.start()
    stop = asyncio.Event()
    worker = None
    try:
        assert app.store.url is not None and app.store.url.startswith("unix://")
        # The worker reuses the converted model the session's lm_client fixture cached.
        worker_dir = tmp_path / "worker"
        worker_dir.mkdir()
        (worker_dir / "models").symlink_to(model_cache, target_is_directory=True)
        worker_settings = load_settings(data_dir=worker_dir, lm_max_batch=4)
        worker = asyncio.create_task(run_worker(worker_settings, app.store.url, stop))
        vectors = await asyncio.wait_for(app.lm.embed(["warm tent", "winter tent"]), 180)
        assert len(vectors) == 2 and abs(sum(v * v for v in vectors[0]) - 1.0) < 1e-3
        [reply] = await console.say("/help")
        assert "/help" in reply.text
    finally:
        stop.set()
        if worker is not None:
            await asyncio.wait_for(worker, 60)
        await app.stop()
