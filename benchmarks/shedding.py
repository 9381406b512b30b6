"""Load shedding benchmarks: overhead, open-loop overload, capacity halving (issue 19).

Run:

    .venv/bin/python benchmarks/shedding.py overhead [--calls 200000] [--rounds 7]

- `overhead`: what the shedder adds to an unloaded call and HTTP request, beside
  the bulkhead, in-process (target: <= 2 us).
"""

from __future__ import annotations

import argparse
import asyncio

import _shedding_overhead


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    _shedding_overhead.add_options(commands.add_parser("overhead", help="in-process overhead"))
    options = parser.parse_args()
    if options.command == "overhead":
        asyncio.run(_shedding_overhead.run(options))


if __name__ == "__main__":
    main()
