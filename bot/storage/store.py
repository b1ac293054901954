"""The Redis connection every part of the core shares, with retry and a plain failure."""

from __future__ import annotations

import logging
from pathlib import Path

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from bot.storage.embedded import EmbeddedRedis
from bot.storage.keys import Keys, merchants, validate_merchant_id

log = logging.getLogger(__name__)

CONNECTION_ERRORS: tuple[type[Exception], ...] = (
    RedisConnectionError,
    RedisTimeoutError,
    ConnectionError,
)


# A command waits this long for a free connection before it fails as "unreachable".
POOL_WAIT_S = 20.0


class Store:
    """Owns the Redis client. `url=None` starts (or joins) the embedded server in `data_dir`.

    The pool is a blocking one: under a burst (thousands of messages, each with observers
    writing to Redis) a command waits for a free connection instead of failing with "too
    many connections" and losing what it carried, as redis-py's default pool (100, then an
    error) did under load.
    """

    def __init__(self, url: str | None, data_dir: Path = Path("var"),
                 max_connections: int = 200) -> None:
        self._url = url
        self.max_connections = max_connections
        self._embedded = EmbeddedRedis(data_dir) if url is None else None
        self._redis: aioredis.Redis | None = None

    @property
    def redis(self) -> aioredis.Redis:
        if self._redis is None:
            raise RuntimeError("Store.start() has not been awaited")
        return self._redis

    @property
    def embedded(self) -> bool:
        return self._embedded is not None

    @property
    def url(self) -> str | None:
        return self._url

    async def start(self) -> None:
        if self._embedded is not None:
            self._url = await self._embedded.start()
        assert self._url is not None
        pool = aioredis.BlockingConnectionPool.from_url(
            self._url,
            max_connections=self.max_connections,
            timeout=POOL_WAIT_S,
            decode_responses=True,
            health_check_interval=30,
            socket_connect_timeout=2,
            socket_timeout=10,
            retry=Retry(ExponentialBackoff(cap=2.0, base=0.1), retries=4),
            retry_on_error=[RedisConnectionError, RedisTimeoutError],
        )
        self._redis = aioredis.Redis.from_pool(pool)
        await self._redis.ping()

    async def stop(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None
        if self._embedded is not None:
            await self._embedded.stop()

    def keys(self, merchant: str) -> Keys:
        return Keys(validate_merchant_id(merchant))

    async def register_merchant(self, merchant: str) -> None:
        await self.redis.sadd(merchants(), validate_merchant_id(merchant))

    async def is_empty(self, merchant: str) -> bool:
        """True when the merchant has neither FAQ nor catalog yet."""
        keys = self.keys(merchant)
        return not (await self.redis.exists(keys.faq_ids(), keys.product_skus()))
