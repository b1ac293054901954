"""`shopkeep import faq|catalog FILE`: clear row errors and nothing stored; a good file lands."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "examples" / "demo-shop"


def _shopkeep(redis_url: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, SHOPKEEP_REDIS_URL=redis_url, SHOPKEEP_DATA_DIR=str(tmp_path),
               SHOPKEEP_CONFIG=str(tmp_path / "none.toml"))
    return subprocess.run([sys.executable, "-m", "bot.cli", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


def test_a_broken_file_is_refused_with_row_messages(redis_url: str, redis_sync: redis.Redis,
                                                    tmp_path: Path) -> None:
    bad = tmp_path / "catalog.csv"
    bad.write_text("sku,name,description,price,currency,category\n"
                   "A1,Mug,A mug.,12,USD,kitchen\nA2,Cup,A cup.,abc,USD,kitchen\n")
    done = _shopkeep(redis_url, tmp_path, "import", "catalog", str(bad), "--merchant", "m1")
    assert done.returncode == 1
    assert "nothing was imported" in done.stderr
    assert "row 2: price 'abc' is not a number" in done.stderr
    assert redis_sync.keys("sk:m1:*") == []
    missing = _shopkeep(redis_url, tmp_path, "import", "faq", str(tmp_path / "nope.yaml"))
    assert missing.returncode == 1 and "no such file" in missing.stderr


def test_import_demo_faq(redis_url: str, redis_sync: redis.Redis, tmp_path: Path) -> None:
    done = _shopkeep(redis_url, tmp_path, "import", "faq", str(DEMO / "faq.yaml"),
                     "--merchant", "m2")
    assert done.returncode == 0, done.stderr
    assert "25 added, 0 updated, 0 unchanged, 0 removed" in done.stdout
    assert redis_sync.scard("sk:m2:faq_ids") == 25
    assert redis_sync.hlen("sk:m2:vectors") == 25
