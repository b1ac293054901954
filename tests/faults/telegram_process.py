"""A bot process on Telegram (real adapter, command pipeline, `/say`) that runs until
SIGTERM: what the kill-mid-conversation test starts and SIGKILLs as a real child process."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

from adapters.telegram import TelegramAdapter
from tests.faults.support import SAY, CommandPipeline


async def run(args: argparse.Namespace) -> None:
    host = CommandPipeline(args.redis, extra=[SAY])
    await host.start()
    adapter = TelegramAdapter(args.token, args.api, poll_timeout_s=1)
    await adapter.start(host)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    print("ready", flush=True)
    await stop.wait()
    await adapter.stop(drain_s=10)
    await host.stop()


def main() -> int:
    parser = argparse.ArgumentParser()
    for name in ("redis", "api", "token"):
        parser.add_argument(f"--{name}", required=True)
    asyncio.run(run(parser.parse_args()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
