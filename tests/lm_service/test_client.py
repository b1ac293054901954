"""`create_lm_client` picks the backend from the settings, without importing torch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from pydantic import SecretStr

from lm_service.api import LMClient, LMUnavailable
from lm_service.client import create_lm_client
from lm_service.local import InProcessLMClient
from lm_service.openai_backend import OpenAICompatibleClient
from lm_service.remote import RedisLMClient


def settings(**changes: Any) -> SimpleNamespace:
    base = dict(lm_backend="local", lm_model=None, embed_model=None, lm_dtype="auto",
                lm_threads=None, lm_max_batch=16, lm_max_queue=256, lm_timeout_s=30.0,
                lm_openai_url=None, lm_openai_model="default", lm_openai_api_key=None,
                redis_url=None, data_dir=Path("var"))
    base.update(changes)
    return SimpleNamespace(**base)


def test_importing_the_client_does_not_import_torch() -> None:
    code = ("import sys, lm_service.client, lm_service.remote, lm_service.local, "
            "lm_service.openai_backend, lm_service.worker; print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=Path(__file__).resolve().parents[2])
    assert out.stdout.strip() == "False"


def test_local_backend() -> None:
    client = create_lm_client(settings(lm_max_batch=32, data_dir=Path("/tmp/x")))
    assert isinstance(client, InProcessLMClient) and isinstance(client, LMClient)
    assert client.config.max_batch == 32
    assert client.config.cache_dir == Path("/tmp/x/models")


def test_remote_backend(redis_client: Any) -> None:
    client = create_lm_client(settings(lm_backend="remote"), redis=redis_client)
    assert isinstance(client, RedisLMClient) and isinstance(client, LMClient)
    with pytest.raises(LMUnavailable):
        create_lm_client(settings(lm_backend="remote"))


def test_openai_backend() -> None:
    client = create_lm_client(settings(lm_backend="openai", lm_openai_url="http://127.0.0.1:1/v1",
                                       lm_openai_api_key=SecretStr("k")))
    assert isinstance(client, OpenAICompatibleClient) and isinstance(client, LMClient)
    assert client.api_key == "k" and isinstance(client.embedder, InProcessLMClient)
    assert client.embedder.config.generator is False
    with pytest.raises(LMUnavailable):
        create_lm_client(settings(lm_backend="openai"))
