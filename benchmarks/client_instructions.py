"""A fixed number of Redis commands through `RedisClient`, to count under valgrind.

Wall-clock figures swing with whatever else the machine runs; the instructions the
client process executes do not. Run it twice, with 0 and with N commands, and divide
the difference of the counts by N to get the client's instructions per command:

    PYTHONPATH=src valgrind --tool=callgrind --callgrind-out-file=/dev/null
        .venv/bin/python benchmarks/client_instructions.py --commands 4000 --tasks 1
    (one command line)

Both runs warm up alike (connect, load the script, 200 commands), so the difference
is the commands alone.
"""

from __future__ import annotations

import argparse
import asyncio

from scalepy.backends.redis import RedisClient, Script

_SCRIPT = Script("echo_first", "return ARGV[1]")
_ARRAY = Script("echo_all", "return ARGV")  # an array reply, as the limiter's scripts give
_WARM_UP = 200


async def _run(url: str, command: str, commands: int, tasks: int) -> None:
    async with RedisClient.from_url(url) as client:
        await client.execute("SET", "{bench}:key", "value")

        async def one() -> None:
            if command == "get":
                await client.execute("GET", "{bench}:key")
            else:
                script = _SCRIPT if command == "evalsha" else _ARRAY
                await client.run_script(script, ["{bench}:a", "{bench}:b"], [1, 2.5, "x", b"y"])

        for _ in range(_WARM_UP):
            await one()

        async def caller() -> None:
            for _ in range(commands // tasks):
                await one()

        await asyncio.gather(*(caller() for _ in range(tasks)))
        await client.execute("DEL", "{bench}:key")


def main() -> None:
    """Parse the options and send the commands."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--command", choices=("get", "evalsha", "array"), default="get")
    parser.add_argument("--commands", type=int, default=4000)
    parser.add_argument("--tasks", type=int, default=1)
    options = parser.parse_args()
    asyncio.run(_run(options.url, options.command, options.commands, options.tasks))


if __name__ == "__main__":
    main()
