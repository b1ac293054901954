"""Personal data never reaches disk: a member's email, phone, card number and IBAN, sent through
every way in (Telegram and Discord through their real SDKs and the stand-ins, the console, a
command argument, a history import row), appear nowhere in Redis's append-only file, its RDB
snapshot or the logs — in any written form — while their redacted forms do."""

from __future__ import annotations

import io
import json
import logging
import re
import unicodedata
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis

from adapters.console import ConsoleAdapter
from adapters.discord import DiscordAdapter
from adapters.telegram import TelegramAdapter
from bot.logs import make_handler
from bot.profiles.feature import ProfilesFeature
from bot.profiles.history import import_history, parse_history
from lm_service.api import LMClient
from tests.knowledge.lmcache import EmbedMemo
from tests.standins.discord_api import DiscordStandIn
from tests.standins.telegram_api import TelegramStandIn
from tests.support.harness import running_app
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.slow

SECRETS = {
    "email": ["jörg.wanderlust@müllerhütte.de", "ceshiyonghu@例子.广告",
              "annabel.leeward+shop@gmail.com"],
    "phone": ["+44 20 7946 0958", "(555) 867-5309", "+49-30-90182736"],
    "card": ["4111  1111  1111  1111", "5500.0055.5555.5559", "3782\t822463\u00a010005"],
    "iban": ["DE89 3704 0044 0532 0130 00"],
}
MESSAGE = ("Hi, where is my order #10234? I'm {email[0]} (or {email[1]}, {email[2]}), call "
           "{phone[0]} or {phone[1]} or {phone[2]}; card {card[0]}, old cards {card[1]} and "
           "{card[2]}, refunds to {iban[0]}?").format(**SECRETS)
TG_GROUP = -100777
PLACEHOLDERS = [b"[email]", b"[phone]", b"[card number]", b"[iban]"]


def _pattern(secret: str) -> re.Pattern[str]:
    """The secret's letters and digits in order, with up to four other characters between
    any two: every grouping, separator and case it could be stored in."""
    chars = [c for c in unicodedata.normalize("NFKC", secret).lower() if c.isalnum()]
    return re.compile(r"[\W_]{0,4}".join(re.escape(c) for c in chars))


PATTERNS = {s: _pattern(s) for kind in SECRETS.values() for s in kind}
# The parts of an email that identify someone on their own, and the ASCII form of the domain.
for address in SECRETS["email"]:
    local, domain = address.split("@")
    PATTERNS[f"{address} (local part)"] = _pattern(local)
    PATTERNS[f"{address} (punycode)"] = _pattern(domain.encode("idna").decode())


def _views(data: bytes) -> Iterator[str]:
    """Ways stored text can be read back: UTF-8, and JSON's \\uXXXX escapes undone."""
    text = data.decode("utf-8", errors="replace").lower()
    yield text
    yield re.sub(r"\\u([0-9a-f]{4})", lambda m: chr(int(m.group(1), 16)), text)


def leaks(data: bytes) -> list[str]:
    return sorted({name for view in _views(data) for name, p in PATTERNS.items()
                   if p.search(view)})


def test_the_scan_finds_every_form_it_looks_for() -> None:
    """The scanner itself: it must not pass because it cannot see."""
    assert leaks(b"") == []
    blob = json.dumps({"t": "J\u00f6rg.Wanderlust@M\u00fcllerh\u00fctte.de"}).encode()
    assert "jörg.wanderlust@müllerhütte.de" in leaks(blob)  # JSON-escaped, other case
    assert "4111  1111  1111  1111" in leaks(b"\x00\x034111-1111.1111 1111\xff")
    assert "+44 20 7946 0958" in leaks(b"phone 442079460958")
    assert "DE89 3704 0044 0532 0130 00" in leaks(b"de89370400440532013000")
    assert "ceshiyonghu@例子.广告 (punycode)" in leaks(b"xn--fsqu00a.xn--4rr70v")
    assert "jörg.wanderlust@müllerhütte.de (local part)" in leaks(
        "jörg wanderlust".encode())  # punctuation turned into spaces (gap grouping)
    assert leaks(MESSAGE.encode()) and not leaks(b"order #10234 [email] [card number]")


@pytest.fixture
def private_redis() -> Iterator[RedisServer]:
    """A server of its own, so its files hold this test's writes only; AOF on every write,
    and RDB without compression so that a compressed value cannot hide a secret."""
    server = RedisServer(config=["--appendonly", "yes", "--appendfsync", "always",
                                 "--rdbcompression", "no", "--dbfilename", "dump.rdb"])
    server.start()
    yield server
    server.stop()


@pytest.fixture
def captured_logs() -> Iterator[list[io.StringIO]]:
    """Everything logged at DEBUG (SDKs print whole payloads there), through the bot's own
    handlers, plain and JSON."""
    streams = [io.StringIO(), io.StringIO()]
    handlers = [make_handler(streams[0]), make_handler(streams[1], json_lines=True)]
    root = logging.getLogger()
    old_level = root.level
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield streams
    root.setLevel(old_level)
    for handler in handlers:
        root.removeHandler(handler)


@pytest.fixture
async def standins() -> AsyncIterator[tuple[TelegramStandIn, DiscordStandIn]]:
    tg, dc = TelegramStandIn(), DiscordStandIn()
    await tg.start()
    await dc.start()
    yield tg, dc
    await dc.stop()
    await tg.stop()


async def test_personal_data_sent_every_way_never_reaches_disk(
        private_redis: RedisServer, standins: tuple[TelegramStandIn, DiscordStandIn],
        captured_logs: list[io.StringIO], lm_client: LMClient, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    tg, dc = standins
    # Both communities are the merchant's own (where approval is required, it is given).
    monkeypatch.setenv("SHOPKEEP_COMMUNITIES", f"telegram:{TG_GROUP},discord:{dc.guild_id}")
    console = ConsoleAdapter(user="ann", interactive=False)
    adapters = [console, TelegramAdapter(tg.token, tg.base_url, poll_timeout_s=1),
                DiscordAdapter(dc.token, api_url=dc.api_url, gateway_url=dc.gateway_url,
                               guild_ready_timeout=0.1)]
    async with running_app(private_redis.url, tmp_path, EmbedMemo(lm_client),
                           adapters=adapters) as app:
        tg.group(TG_GROUP)
        tg.message(TG_GROUP, 41, f"@{tg.username} {MESSAGE}")  # a question in the group
        tg.message(TG_GROUP, 42, MESSAGE)  # chatter: profiles and campaigns read it
        tg.message(43, 43, MESSAGE)  # a direct message
        tg.message(TG_GROUP, 44, f"/recommend {MESSAGE}")  # a command argument
        await dc.message("4", f"<@{dc.bot_id}> {MESSAGE}")
        await dc.message("5", MESSAGE)
        await dc.message("4", MESSAGE, dm=True)
        await dc.slash("5", "recommend", {"what": MESSAGE})
        for text in (MESSAGE, f"/recommend {MESSAGE}", f"/start {MESSAGE}",
                     f"/link {MESSAGE}"):
            assert await console.say(text)
        export = tmp_path / "history.jsonl"
        export.write_text(json.dumps({"platform": "telegram", "community": str(TG_GROUP),
                                      "user": "45", "text": MESSAGE, "ts": 1_700_000_000},
                                     ensure_ascii=False) + "\n", encoding="utf-8")
        profiles = next(f for f in app.features if isinstance(f, ProfilesFeature))
        await import_history(profiles.writer, app.lm, "default", parse_history(export))

        await tg.wait_for(lambda: len(tg.sent) >= 3, timeout=240)  # group, DM, command
        await dc.wait_for(lambda: {(s.kind, s.channel_id == dc.general) for s in dc.sent}
                          >= {("message", True), ("message", False), ("followup", True)},
                          240)  # the mention, the DM, the slash command
        await app.router.drain()
        await profiles.flush()
        stored = await app.store.redis.dbsize()
    assert stored > 0
    client = redis.Redis(port=private_redis.port)
    try:
        client.save()  # the RDB snapshot, as a scheduled save would write it
    finally:
        client.close()

    files = private_redis.data_files()
    assert any(f.suffix == ".rdb" for f in files) and any(".aof" in f.name for f in files)
    on_disk = b"".join(f.read_bytes() for f in files)
    for placeholder in PLACEHOLDERS:  # the messages were stored, in their redacted form
        assert placeholder in on_disk, placeholder
    assert b"telegram:4242:pending" in on_disk  # the update buffer was used
    for path in files:
        assert leaks(path.read_bytes()) == [], path.name
    for stream in captured_logs:
        logged = stream.getvalue()
        # The SDKs logged whole payloads at DEBUG: member text reached the logs, redacted.
        assert "[card number]" in logged and "order #10234" in logged
        assert leaks(logged.encode()) == []
