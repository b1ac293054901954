"""The demo shop (examples/demo-shop), loaded into an empty embedded store on first run."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from bot.core import Core
from bot.persona import Persona, save_persona

log = logging.getLogger(__name__)

DEMO_DIR = Path(__file__).resolve().parents[1] / "examples" / "demo-shop"


async def load_demo_if_empty(core: Core, features: Sequence[object],
                             folder: Path = DEMO_DIR) -> bool:
    """Load the demo shop for the default merchant when the embedded store has no FAQ and no
    catalog yet. A store given by SHOPKEEP_REDIS_URL is never filled with demo data."""
    merchant = core.settings.merchant
    if not core.settings.demo_shop or not core.store.embedded or not folder.is_dir():
        return False
    if not await core.store.is_empty(merchant):
        return False
    await save_persona(core.store, merchant, Persona.from_yaml(folder / "persona.yaml"))
    for feature in features:
        loader = getattr(feature, "load_demo", None)
        if loader is not None:
            await loader(folder, merchant)
    log.info("loaded the demo shop from %s", folder)
    return True
