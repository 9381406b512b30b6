"""`python -m demo.dashboard_picture OUT.svg`: the Grafana dashboard's panels, drawn with real data.

No Grafana here, so this draws the dashboard itself: it runs the demo stack with
Prometheus (`demo.prometheus`), takes it through the tour (writes, cache hits, a burst
of 429s, PostgreSQL cut until the breaker opens, then restored) and 24 s of steady
load with PostgreSQL cut in the middle 8 (`demo.load`), asks Prometheus for
every panel's queries over that time, and writes one SVG laid out on the dashboard's
own grid (`gridPos`), one small line chart per panel. docs/operations.md shows it.

Grafana's variables get fixed values: `$job` every job, `$__rate_interval` 5 s (four
scrapes at the demo's 1 s interval).
"""

from __future__ import annotations

import asyncio
import html
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from demo.load import SteadyLoad
from demo.prometheus import Prometheus
from demo.stack import Options, Stack
from demo.tour import Tour

__all__ = ("DASHBOARD", "collect", "render")

DASHBOARD = Path(__file__).resolve().parents[1] / "deploy" / "observability" / "dashboard.json"
_VARIABLES = {"$__rate_interval": "5s", "$job": ".*"}
_COLUMN, _UNIT = 50, 24  # pixels per grid column (24 across) and per grid row
_COLOURS = ("#7eb26d", "#eab839", "#6ed0e0", "#ef843c", "#e24d42", "#1f78c1", "#ba43a9")
_PHASE = 8.0  # seconds of steady load before, during and after the PostgreSQL cut
_LEGEND = re.compile(r"\{\{\s*(\w+)\s*\}\}")

Series = list[tuple[str, list[tuple[float, float]]]]
"""(legend, [(time, value), ...]) for each series of a panel."""


def render(dashboard: dict[str, Any], data: dict[int, Series], start: float, end: float) -> str:
    """The SVG of `dashboard`'s panels, each drawn from `data[panel id]`."""
    panels = dashboard["panels"]
    height = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in panels) * _UNIT
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{24 * _COLUMN}" height="{height}" '
        'font-family="sans-serif" font-size="11">',
        '<rect width="100%" height="100%" fill="#111217"/>',
    ]
    for panel in panels:
        grid = panel["gridPos"]
        x, y = grid["x"] * _COLUMN, grid["y"] * _UNIT
        w, h = grid["w"] * _COLUMN, grid["h"] * _UNIT
        title = html.escape(panel["title"])
        if panel["type"] == "row":
            parts.append(f'<text x="{x + 6}" y="{y + 17}" fill="#d8d9da" font-size="14" '
                         f'font-weight="bold">{title}</text>')  # fmt: skip
            continue
        parts.append(f'<rect x="{x + 3}" y="{y + 3}" width="{w - 6}" height="{h - 6}" rx="3" '
                     f'fill="#181b1f" stroke="#2c3235"/>')  # fmt: skip
        parts.append(f'<text x="{x + 10}" y="{y + 19}" fill="#d8d9da">{title}</text>')
        parts += _chart(
            data.get(panel["id"], []), panel, (x + 10, y + 28, w - 20, h - 64), start, end
        )
    parts.append("</svg>")
    return "\n".join(parts)


def _chart(
    series: Series, panel: dict[str, Any], box: tuple[int, int, int, int], start: float, end: float
) -> list[str]:
    x0, y0, w, h = box
    values = [value for _, points in series for _, value in points]
    if not values:
        return [f'<text x="{x0 + w / 2}" y="{y0 + h / 2}" fill="#8e8e8e" '
                'text-anchor="middle">No data</text>']  # fmt: skip
    top = max(max(values), 0.0) or 1.0
    unit = panel["fieldConfig"]["defaults"]["unit"]
    parts = [
        f'<line x1="{x0}" y1="{y0 + h}" x2="{x0 + w}" y2="{y0 + h}" stroke="#2c3235"/>',
        f'<text x="{x0 + w}" y="{y0 + 8}" fill="#8e8e8e" text-anchor="end">'
        f"{html.escape(_format(top, unit))}</text>",
    ]
    span = max(end - start, 1.0)
    for index, (legend, points) in enumerate(series[: len(_COLOURS)]):
        colour = _COLOURS[index]
        path = " ".join(
            f"{x0 + (t - start) / span * w:.1f},{y0 + h - value / top * h:.1f}"
            for t, value in points
        )
        parts.append(
            f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="1.5"/>'
        )
        lx = x0 + (index % 3) * (w // 3)
        ly = y0 + h + 14 + (index // 3) * 13
        if ly < y0 + h + 34:  # two legend lines at most
            parts.append(f'<rect x="{lx}" y="{ly - 8}" width="8" height="8" fill="{colour}"/>')
            parts.append(f'<text x="{lx + 11}" y="{ly}" fill="#c7d0d9">'
                         f"{html.escape(legend[:24])}</text>")  # fmt: skip
    return parts


def _format(value: float, unit: str) -> str:
    """The y axis' top value, in the panel's unit."""
    if unit == "percentunit":
        return f"{value * 100:.0f} %"
    if unit == "s":
        return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.1f} s"
    suffix = {"reqps": " req/s", "ops": " /s"}.get(unit, "")
    return f"{value:.3g}{suffix}"


async def _query(client: httpx.AsyncClient, url: str, expr: str, start: float, end: float) -> Any:
    for name, value in _VARIABLES.items():
        expr = expr.replace(name, value)
    params = {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": "1"}
    response = await client.get(f"{url}/api/v1/query_range", params=params)
    response.raise_for_status()
    return response.json()["data"]["result"]


def _legend(template: str, labels: dict[str, str]) -> str:
    """Grafana's `{{label}}` legend template, filled in."""
    return _LEGEND.sub(lambda match: labels.get(match[1], ""), template)


async def collect(
    prometheus: Prometheus, dashboard: dict[str, Any], start: float, end: float
) -> dict[int, Series]:
    """Every panel's series from `start` to `end`."""
    data: dict[int, Series] = {}
    async with httpx.AsyncClient(timeout=10.0) as client:
        for panel in dashboard["panels"]:
            for target in panel.get("targets", ()):
                for result in await _query(client, prometheus.url, target["expr"], start, end):
                    legend = _legend(target["legendFormat"], result["metric"])
                    points = [(float(t), float(v)) for t, v in result["values"] if v != "NaN"]
                    data.setdefault(panel["id"], []).append((legend, points))
    return data


async def _main(out: Path) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    stack = Stack(Options(replicas=3, port=0), say=print)
    try:
        await stack.start()
        prometheus = Prometheus(stack)
        await prometheus.start()
        assert stack.relay is not None
        start = time.time()
        async with httpx.AsyncClient(base_url=stack.base_url, timeout=10.0) as client:
            await Tour(stack, client).run(print)
        token = await stack.mint_token("todos:write")
        async with SteadyLoad(stack.base_url, token, clients=4):
            print("steady load: 8 s, PostgreSQL cut for 8 s, 8 s more")
            await asyncio.sleep(_PHASE)
            stack.relay.cut()
            await asyncio.sleep(_PHASE)
            stack.relay.restore()
            await asyncio.sleep(_PHASE)
        await asyncio.sleep(3)  # the last scrapes
        end = time.time()
        svg = render(dashboard, await collect(prometheus, dashboard, start, end), start, end)
        await asyncio.to_thread(out.write_text, svg)
        print(f"wrote {out}")
    finally:
        await stack.stop()


if __name__ == "__main__":
    asyncio.run(_main(Path(sys.argv[1])))
