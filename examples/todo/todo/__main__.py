"""The `todo` command (also `python -m todo`): one-shot jobs around the service.

```
python -m todo migrate                                  # create/upgrade the schema
python -m todo token --scope todos:write [--ttl 3600]   # print a bearer token
```

Both read the same `TODO_*` settings as the app. The app itself runs under uvicorn
(`uvicorn --factory todo.app:create_app`) and the worker under `scalepy worker`
(see examples/todo/README.md).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from typing import TYPE_CHECKING

import asyncpg

from scalepy.backends import mask_url
from todo.auth import ADMIN, WRITE, issue_token
from todo.schema import migrate
from todo.settings import Settings, SettingsError

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ("main",)


def main(argv: Sequence[str] | None = None) -> int:
    """Run a command; returns the exit status."""
    parser = argparse.ArgumentParser(prog="todo", description="The Todo API's commands.")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("migrate", help="create the database if needed and apply migrations")
    token = commands.add_parser("token", help="print a signed bearer token")
    token.add_argument(
        "--scope",
        action="append",
        choices=(WRITE, ADMIN),
        default=[],
        help=f"a scope to grant (repeatable; default {WRITE})",
    )
    token.add_argument("--ttl", type=float, default=3600.0, help="seconds it is valid")
    token.add_argument("--subject", default="cli", help="the token's subject (sub)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"todo: {exc}", file=sys.stderr)
        return 2
    if args.command == "migrate":
        try:
            applied = asyncio.run(migrate(settings.database_url))
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            where = mask_url(settings.database_url)
            print(f"todo: cannot migrate {where}: {type(exc).__name__}: {exc}", file=sys.stderr)
            return 1
        print(f"applied {applied}" if applied else "the schema is up to date")
        return 0
    print(issue_token(settings, args.scope or [WRITE], ttl=args.ttl, subject=args.subject))
    return 0


if __name__ == "__main__":
    sys.exit(main())
