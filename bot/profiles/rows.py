"""Profile hashes read and written a whole batch at a time: one Lua script call each way."""

from __future__ import annotations

from dataclasses import dataclass

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript

from bot.storage.keys import Keys

# redis-py packs every command and parses every reply in Python (no hiredis here): the ~130
# pipelined commands of a batch of 64 messages cost ~4 ms of CPU, taken from the embedder on
# the same cores. One script call per direction is one command and one reply. Every key a
# script touches is passed in KEYS.

# KEYS[1] the opted-out set, KEYS[2..] profile hashes; ARGV the members, in the same order.
# Answers one string, four fields per member joined by NUL (which JSON, base64 and our member
# keys never contain): opted-out flag, vec, aff, meta.
_READ = """
local out = {}
for i = 2, #KEYS do
  local n = #out
  if redis.call('SISMEMBER', KEYS[1], ARGV[i - 1]) == 1 then
    out[n + 1], out[n + 2], out[n + 3], out[n + 4] = '1', '', '', ''
  else
    local row = redis.call('HMGET', KEYS[i], 'vec', 'aff', 'meta')
    local meta = row[3]
    if not meta and redis.call('EXISTS', KEYS[i]) == 1 then
      -- the first layout kept every field at the top level: hand them over as one object
      local flat, map = redis.call('HGETALL', KEYS[i]), {}
      for j = 1, #flat, 2 do map[flat[j]] = flat[j + 1] end
      meta = cjson.encode(map)
    end
    out[n + 1], out[n + 2], out[n + 3], out[n + 4] = '0', row[1] or '', row[2] or '', meta or ''
  end
end
return table.concat(out, '\\0')
"""

# KEYS[1] the profile index, KEYS[2] the stale-summary set, KEYS[3..] profile hashes.
# ARGV[1]: now; ARGV[2]: seven fields per profile, in KEYS order, joined by NUL (packing one
# argument costs redis-py a thirtieth of packing 450): member, vec, aff, meta, ttl (0: keep
# the expiry), last seen, needs a summary (1/0).
# Every write sets absolute values, so a call retried after a lost reply changes nothing.
_WRITE = """
local data, f, from = ARGV[2], {}, 1
while true do
  local stop = string.find(data, '\\0', from, true)
  if not stop then f[#f + 1] = string.sub(data, from); break end
  f[#f + 1] = string.sub(data, from, stop - 1)
  from = stop + 1
end
if #f ~= 7 * (#KEYS - 2) then return redis.error_reply('profile write: bad field count') end
for i = 1, #KEYS - 2 do
  local key, a = KEYS[i + 2], (i - 1) * 7
  if f[a + 2] ~= '' then
    redis.call('HSET', key, 'vec', f[a + 2], 'aff', f[a + 3], 'meta', f[a + 4])
  else
    redis.call('HSET', key, 'aff', f[a + 3], 'meta', f[a + 4])
  end
  if f[a + 5] ~= '0' then redis.call('EXPIRE', key, f[a + 5]) end
  redis.call('ZADD', KEYS[1], f[a + 6], f[a + 1])
  if f[a + 7] == '1' then redis.call('ZADD', KEYS[2], 'NX', ARGV[1], f[a + 1]) end
end
return #KEYS - 2
"""

_SEP = "\0"


@dataclass
class StoredRow:
    """One profile hash as read: empty strings where a field (or the hash) is missing."""

    opted_out: bool
    vec: str
    aff: str
    meta: str


@dataclass
class NewRow:
    """What the writer saves for one profile."""

    member: str
    vec: str
    aff: str
    meta: str
    ttl: int  # seconds; 0 leaves the hash's expiry as it is
    last_seen: float
    stale: bool  # joins the stale-summary set (NX: an older mark is kept)


class ProfileRows:
    """Batch access to `Keys.profile` hashes for the ingestion writer."""

    def __init__(self) -> None:
        self._scripts: dict[int, tuple[AsyncScript, AsyncScript]] = {}

    def _for(self, redis: aioredis.Redis) -> tuple[AsyncScript, AsyncScript]:
        # redis-py's Script loads itself again after NOSCRIPT (a restarted server).
        scripts = self._scripts.get(id(redis))
        if scripts is None:
            scripts = (redis.register_script(_READ), redis.register_script(_WRITE))
            self._scripts = {id(redis): scripts}
        return scripts

    async def read(self, redis: aioredis.Redis, keys: Keys,
                   members: list[str]) -> list[StoredRow]:
        """The opted-out flag and stored fields of each member, in order."""
        if not members:
            return []
        if any(_SEP in m for m in members):
            raise ValueError("a member key holds a NUL character")
        read, _ = self._for(redis)
        answer = str(await read(keys=[keys.opted_out(), *(keys.profile(m) for m in members)],
                                args=members))
        fields = answer.split(_SEP)
        if len(fields) != 4 * len(members):
            raise ValueError(f"profile read answered {len(fields)} fields for "
                             f"{len(members)} members")
        return [StoredRow(fields[i] == "1", fields[i + 1], fields[i + 2], fields[i + 3])
                for i in range(0, len(fields), 4)]

    async def write(self, redis: aioredis.Redis, keys: Keys, rows: list[NewRow],
                    now: float) -> None:
        """Hashes, expiries, the index and the stale-summary marks of all rows, in one call."""
        if not rows:
            return
        if any(_SEP in row.member for row in rows):
            raise ValueError("a member key holds a NUL character")
        _, write = self._for(redis)
        packed = _SEP.join(f"{r.member}\0{r.vec}\0{r.aff}\0{r.meta}\0{r.ttl}\0{r.last_seen!r}"
                           f"\0{1 if r.stale else 0}" for r in rows)
        await write(keys=[keys.profile_index(), keys.profile_dirty(),
                          *(keys.profile(row.member) for row in rows)], args=[now, packed])
