"""nginx for the demo: render deploy/nginx.conf for this machine, check it, run it.

nginx runs in the foreground (`daemon off`) as the demo's child, with its own prefix
in the demo's temporary directory: pid file, temp files and config live there, logs
go to its stdout/stderr. Run as root, the demo drops it to `nobody` first.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import re
import shutil
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Collection, Mapping, Sequence

__all__ = (
    "TEMPLATE",
    "command",
    "reload",
    "render",
    "unprivileged_account",
    "worker_pids",
    "write_config",
)

TEMPLATE = Path(__file__).resolve().parents[1] / "deploy" / "nginx.conf"
_PLACEHOLDER = re.compile(r"\$\{(TODO_[A-Z0-9_]+)\}")
_UNPRIVILEGED = "nobody"


def render(template: str, values: Mapping[str, str]) -> str:
    """Fill in the `${TODO_*}` placeholders as envsubst would; nginx's `$variables` stay.

    Raises:
        KeyError: A placeholder has no value (envsubst would leave it, nginx would not start).
    """

    def fill(match: re.Match[str]) -> str:
        name = match[1]
        if name not in values:
            raise KeyError(f"no value for ${{{name}}} in {TEMPLATE.name}")
        return values[name]

    return _PLACEHOLDER.sub(fill, template)


def write_config(
    prefix: Path, listen: str, sockets: Sequence[Path], *, down: Collection[Path] = ()
) -> Path:
    """Write the rendered config into `prefix` (nginx's own directory) and return its path.

    The replicas listening on `down` stay listed but get no request (`server ... down;`).
    """
    servers = " ".join(
        f"server unix:{socket}{' down' if socket in down else ''};" for socket in sockets
    )
    config = prefix / "nginx.conf"
    config.write_text(
        render(
            TEMPLATE.read_text(),
            {"TODO_NGINX_LISTEN": listen, "TODO_UPSTREAM_SERVERS": servers},
        )
    )
    account = unprivileged_account()
    if account is not None:  # nginx will run as nobody: its prefix must be its own
        os.chown(prefix, account.pw_uid, account.pw_gid)
    return config


def unprivileged_account() -> pwd.struct_passwd | None:
    """The account nginx runs as when the demo runs as root (`nobody`), else `None`.

    That account must own the file nginx's stdout goes to (it opens /dev/stdout for its
    access log) and be able to reach the replicas' sockets.
    """
    if os.geteuid() != 0:
        return None
    return pwd.getpwnam(_UNPRIVILEGED)


def command(prefix: Path, *, test: bool = False) -> list[str]:
    """The command line that runs nginx in the foreground (`test`: only check the config)."""
    nginx = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/sbin")
    if nginx is None:
        raise FileNotFoundError("nginx is not installed (scripts/demo.sh installs it)")
    argv = [nginx, "-e", "stderr", "-p", f"{prefix}/", "-c", str(prefix / "nginx.conf")]
    argv += ["-t", "-q"] if test else ["-g", "daemon off;"]
    account = unprivileged_account()
    if account is not None:
        argv = [
            "setpriv", f"--reuid={account.pw_uid}", f"--regid={account.pw_gid}",
            "--clear-groups", "--pdeathsig=TERM", "--", *argv,
        ]  # fmt: skip
    return argv


def worker_pids(master: int) -> set[int]:
    """The processes the nginx master `master` runs now (its workers), from /proc."""
    children = Path(f"/proc/{master}/task/{master}/children").read_text()
    return {int(pid) for pid in children.split()}


async def reload(master: int, *, within: float = 30.0) -> None:
    """Make nginx load its config again (SIGHUP); return once no old worker is left.

    nginx starts workers with the new config and tells the old ones to finish the
    requests they have in flight, then exit: once they are gone, every request in
    flight is answered and none runs on the old config. Polled (another process's
    children: no event to await).

    Raises:
        TimeoutError: Old workers were still running after `within` seconds (or nginx
            refused the config: check it with `command(prefix, test=True)` first).
    """
    old = worker_pids(master)
    os.kill(master, signal.SIGHUP)
    deadline = time.monotonic() + within
    while (current := worker_pids(master)) & old or not current:
        if time.monotonic() > deadline:
            left = sorted(current & old)
            raise TimeoutError(f"old nginx workers {left} still running after {within:g} s")
        await asyncio.sleep(0.02)
