"""The README's first command, as a new user runs it: `shopkeep run` with questions piped in,
on a cold start (empty data folder: the demo shop is loaded) and a warm one (the embedder
loads as the first question arrives). Each run is a real process with its embedded Redis."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def run(data_dir: Path, lines: list[str], *options: str) -> tuple[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHOPKEEP_")}
    env.update(SHOPKEEP_DATA_DIR=str(data_dir), SHOPKEEP_LOG_LEVEL="INFO")
    for token in ("DISCORD_TOKEN", "TELEGRAM_TOKEN"):
        env.pop(token, None)
    done = subprocess.run(
        [sys.executable, "-m", "bot.cli", "run", *options],
        input="\n".join([*lines, "/quit", ""]), capture_output=True, text=True, cwd=REPO,
        env=env, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout, done.stderr


def replies(stdout: str) -> list[str]:
    return [part.split("\n\nyou>")[0].strip() for part in stdout.split("bot> ")[1:]]


def test_first_questions_are_answered_with_sources_on_cold_and_warm_starts(
        tmp_path: Path) -> None:
    cache = Path(os.environ.get("SHOPKEEP_TEST_MODEL_CACHE", "var/test-models")).resolve()
    (tmp_path / "models").symlink_to(cache, target_is_directory=True)

    out, err = run(tmp_path, ["do you ship to canada?", "which tent for winter?", "/mydata"])
    logs = [err]
    canada, tent, mydata = replies(out)
    assert "ship to Canada" in canada and "Sources: Do you ship internationally" in canada
    assert "Sources:" in tent and "Tent" in tent
    assert "loaded the demo shop" in err  # a cold start: the store was empty
    saved = Path(mydata.split("(file saved: ")[1].split(",")[0])
    assert saved.parent == tmp_path / "files" and saved.stat().st_mode & 0o077 == 0
    assert "ship to canada" in json.dumps(json.loads(saved.read_bytes()))

    out, err = run(tmp_path, ["do you ship to canada?", "/digest preview"], "--as", "moderator")
    logs.append(err)
    canada, digest = replies(out)
    assert "Sources: Do you ship internationally" in canada
    assert "loaded the demo shop" not in err  # warm: nothing embedded before the question
    png = Path(digest.split("(file saved: ")[1].split(",")[0])
    assert png.read_bytes().startswith(b"\x89PNG")
    assert not [line for log in logs for line in log.splitlines()
                if "embed failed" in line or "unavailable" in line]
