"""nginx for the demo: render deploy/nginx.conf for this machine, check it, run it.

nginx runs in the foreground (`daemon off`) as the demo's child, with its own prefix
in the demo's temporary directory: pid file, temp files and config live there, logs
go to its stdout/stderr. Run as root, the demo drops it to `nobody` first.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

__all__ = (
    "TEMPLATE",
    "command",
    "render",
    "unprivileged_account",
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


def write_config(prefix: Path, listen: str, sockets: Sequence[Path]) -> Path:
    """Write the rendered config into `prefix` (nginx's own directory) and return its path.

    `max_fails=0`: a replica refusing connects while it restarts is never marked unavailable.
    """
    servers = " ".join(f"server unix:{socket} max_fails=0;" for socket in sockets)
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
