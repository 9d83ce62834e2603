"""Medians, the printed table and the JSON report.

A run is a plain dict (it goes to JSON as it is); the medians are taken per number over a
size's runs, and every run's own numbers stay in the report.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson

Run = dict[str, Any]

# (path in a run, name in the medians): the numbers the table is made of.
MEDIANS = {
    ("getlogs", "per_s"): "getlogs_per_s",
    ("copy", "per_s"): "copy_per_s",
    ("backfill", "per_s"): "backfill_per_s",
    ("backfill", "wall_s"): "backfill_wall_s",
    ("backfill", "peak_rss_mb"): "backfill_peak_rss_mb",
    ("oracle", "mismatches"): "oracle_mismatches",
    ("follow", "p50_ms"): "follow_p50_ms",
    ("follow", "p95_ms"): "follow_p95_ms",
    ("follow", "peak_rss_mb"): "follow_peak_rss_mb",
    ("follow", "mismatches"): "follow_mismatches",
}


def medians(runs: list[Run]) -> dict[str, float]:
    out = {}
    for (step, key), name in MEDIANS.items():
        values = [r[step][key] for r in runs if step in r and r[step].get(key) is not None]
        if values:
            out[name] = round(statistics.median(values), 2)
    return out


def _num(value: float | None, fmt: str = "{:,.0f}") -> str:
    return "—" if value is None or math.isnan(value) else fmt.format(value)


def _ratio(value: float | None, lower: float | None) -> str:
    if value is None or not lower:
        return "—"
    return f"{value / lower:.0%}"


def table_rows(label: str, size: dict[str, Any]) -> list[list[str]]:
    """The rows of one size: the ceilings, the backfill and live follow."""
    m: dict[str, float] = size["median"]
    first: Run = size["runs"][0] if size["runs"] else {}
    ceilings = [m[k] for k in ("getlogs_per_s", "copy_per_s") if k in m]
    lower = min(ceilings) if ceilings else None
    n = len(size["runs"])
    rows = []
    if "getlogs_per_s" in m:
        note = f"ceiling; {first['getlogs']['note']}"
        rows.append([f"{label} raw eth_getLogs + orjson", _num(m["getlogs_per_s"]), "", "", note])
        rows[-1][2] = _ratio(m["getlogs_per_s"], lower)
    if "copy_per_s" in m:
        note = f"ceiling; {first['copy']['note']}"
        rows.append([f"{label} raw COPY (binary)", _num(m["copy_per_s"]), "", "", note])
        rows[-1][2] = _ratio(m["copy_per_s"], lower)
    if "backfill_per_s" in m:
        note = (
            f"{first['backfill']['events']:,} events in {_num(m['backfill_wall_s'], '{:.1f}')} s; "
            f"oracle mismatches {_num(m.get('oracle_mismatches'), '{:.0f}')}"
        )
        rss = _num(m["backfill_peak_rss_mb"], "{:.0f} MB")
        row = [f"{label} backfill (CLI)", _num(m["backfill_per_s"]), "", rss, note]
        row[2] = _ratio(m["backfill_per_s"], lower)
        rows.append(row)
    if "follow_p95_ms" in m:
        follow = first["follow"]
        note = (
            f"p50 {_num(m['follow_p50_ms'], '{:.0f}')} ms, p95 {_num(m['follow_p95_ms'], '{:.0f}')}"
            f" ms over {len(follow['latencies_ms'])} blocks, poll {follow['poll_interval_s']} s;"
            f" mismatches after {_num(m.get('follow_mismatches'), '{:.0f}')}"
        )
        rss = _num(m["follow_peak_rss_mb"], "{:.0f} MB")
        rows.append([f"{label} live follow (daemon)", "—", "—", rss, note])
    for row in rows:
        row[4] += f" [median of {n}]" if n > 1 else ""
    return rows


def render_table(sizes: dict[str, dict[str, Any]]) -> str:
    header = ["what", "events/s", "ratio to lower ceiling", "peak RSS", "note"]
    rows = [row for label, size in sizes.items() for row in table_rows(label, size)]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = [_line(header, widths), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    lines += [_line(r, widths) for r in rows]
    return "\n".join(lines)


def _line(cells: Iterable[str], widths: list[int]) -> str:
    return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"


def write(path: Path, report: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS))
