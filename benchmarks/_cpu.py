"""CPU time of process trees, from /proc (Linux): what a server spent, whatever else ran.

On a machine shared with other work, requests per second measure the share of the
CPU a server got as much as the server; CPU seconds per request measure the
server alone, so they compare contenders fairly on a busy machine too.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ("tree_cpu_seconds",)

_TICKS = os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(pids: list[int]) -> float:
    """User and system CPU seconds of `pids` and of every live descendant of theirs."""
    stats = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                text = (entry / "stat").read_text()
            except OSError:  # exited meanwhile
                continue
            # The command name (field 2) may hold spaces: the fields after it are counted.
            fields = text[text.rindex(")") + 2 :].split()
            stats[int(entry.name)] = (int(fields[1]), int(fields[11]) + int(fields[12]))
    children: dict[int, list[int]] = {}
    for pid, (parent, _) in stats.items():
        children.setdefault(parent, []).append(pid)
    ticks, pending, seen = 0, list(pids), set()
    while pending:
        pid = pending.pop()
        if pid in seen or pid not in stats:
            continue
        seen.add(pid)
        ticks += stats[pid][1]
        pending += children.get(pid, [])
    return ticks / _TICKS
