"""The distribution's name on the package index, and the install hint of a missing extra.

The import name is `scalepy`; the distribution is `scalepy-toolkit`, because
`scalepy` on PyPI is an unrelated project, which a hint naming `scalepy` would have
pip install. Every hint is built here, so none names the wrong project.
"""

from __future__ import annotations

__all__ = ("DISTRIBUTION", "install_command", "missing_extra")

DISTRIBUTION = "scalepy-toolkit"
"""What `pip install` takes; `pyproject.toml`'s `project.name` (a test checks they agree)."""


def install_command(extras: str) -> str:
    """Return the pip command that installs scalepy with `extras` (comma-separated).

    Args:
        extras: The extras, e.g. `"redis"` or `"postgres,retry"`.

    Returns:
        E.g. `pip install 'scalepy-toolkit[redis]'`.
    """
    return f"pip install '{DISTRIBUTION}[{extras}]'"


def missing_extra(module: str, extras: str) -> ImportError:
    """Return the `ImportError` a module raises when its optional dependency is missing.

    Args:
        module: What needs the extra, e.g. `"scalepy.backends.redis"`.
        extras: The extras that bring it, e.g. `"redis"`.

    Returns:
        The error to raise (`from` the original `ImportError`).
    """
    plural = "extras" if "," in extras else "extra"
    names = " and ".join(f"'{name}'" for name in extras.split(","))
    return ImportError(f"{module} needs the {names} {plural}: {install_command(extras)}")
