"""`create_lm_client(settings)`: the one place that picks the LM backend (no torch imported).

- `local`: `InProcessLMClient`, the models in this process (the default);
- `remote`: `RedisLMClient`, `shopkeep lm-worker` processes over Redis Streams;
- `openai`: `OpenAICompatibleClient` for a vLLM / TGI / llama.cpp server, embeddings local.
"""

from __future__ import annotations

from typing import Any

from lm_service.api import LMClient, LMUnavailable


def create_lm_client(settings: Any, redis: Any = None) -> LMClient:
    """Build the LM client that `settings.lm_backend` names (not started: `await start()`).

    Args:
        settings: `bot.settings.Settings`.
        redis: a `redis.asyncio.Redis` (decode_responses=True) for the remote backend; when
            None, one is made from `settings.redis_url`.

    Raises:
        LMUnavailable: the backend lacks what it needs (a Redis URL, a server URL).
    """
    backend = settings.lm_backend
    if backend == "local":
        from lm_service.local import InProcessLMClient

        return InProcessLMClient.from_settings(settings)
    if backend == "remote":
        from lm_service.remote import RedisLMClient

        if redis is None:
            if not settings.redis_url:
                raise LMUnavailable("lm_backend=remote needs SHOPKEEP_REDIS_URL")
            import redis.asyncio as aioredis

            redis = aioredis.from_url(settings.redis_url, decode_responses=True)
        return RedisLMClient(redis, timeout_s=settings.lm_timeout_s,
                             max_queue=settings.lm_max_queue)
    if backend == "openai":
        from lm_service.local import InProcessLMClient
        from lm_service.openai_backend import OpenAICompatibleClient

        if not settings.lm_openai_url:
            raise LMUnavailable("lm_backend=openai needs SHOPKEEP_LM_OPENAI_URL")
        key = settings.lm_openai_api_key
        return OpenAICompatibleClient(
            settings.lm_openai_url,
            model=settings.lm_openai_model,
            api_key=key.get_secret_value() if key is not None else None,
            timeout_s=settings.lm_timeout_s,
            max_queue=settings.lm_max_queue,
            embedder=InProcessLMClient.from_settings(settings, generator=False),
        )
    raise LMUnavailable(f"unknown lm_backend {backend!r}")
