"""Fixtures for the LM service tests: the session's real engine (tests/conftest.py loads
SmolLM2-135M and all-MiniLM-L6-v2 once) and a way to change its settings for one test."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from lm_service.api import LMClient
from lm_service.local import InProcessLMClient


@pytest.fixture
def lm(lm_client: LMClient) -> InProcessLMClient:
    assert isinstance(lm_client, InProcessLMClient)
    return lm_client


@pytest.fixture
def engine_config(lm: InProcessLMClient) -> Iterator[Any]:
    """The shared engine's config (max_batch, preempt, ...), restored after the test."""
    config = lm.engine.config
    saved = dict(vars(config))
    max_queue = lm.engine.scheduler.max_queue
    yield config
    for key, value in saved.items():
        setattr(config, key, value)
    lm.engine.scheduler.max_queue = max_queue
