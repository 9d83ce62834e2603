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
MEDIANS: dict[tuple[str, ...], str] = {
    ("getlogs", "per_s"): "getlogs_per_s",
    ("copy", "per_s"): "copy_per_s",
    ("copy_unindexed", "per_s"): "copy_unindexed_per_s",
    ("backfill", "per_s"): "backfill_per_s",
    ("backfill", "wall_s"): "backfill_wall_s",
    ("backfill", "reported_per_s"): "backfill_reported_per_s",
    ("backfill", "peak_rss_mb"): "backfill_peak_rss_mb",
    ("backfill", "steady_rss_mb"): "backfill_steady_rss_mb",
    ("backfill", "blocks_per_s"): "backfill_blocks_per_s",
    ("backfill", "http_requests_per_1000_events"): "backfill_requests_per_1000_events",
    ("backfill", "rpc_calls_per_1000_events"): "backfill_calls_per_1000_events",
    ("backfill", "cpu_us_per_event", "indexer"): "cpu_us_indexer",
    ("backfill", "cpu_us_per_event", "postgres"): "cpu_us_postgres",
    ("backfill", "cpu_us_per_event", "node"): "cpu_us_node",
    ("backfill", "cpu_us_per_event", "total"): "cpu_us_total",
    ("oracle", "mismatches"): "oracle_mismatches",
    ("audit", "wall_s"): "audit_wall_s",
    ("audit", "share_of_backfill"): "audit_share",
    ("audit", "calls_per_1000_blocks"): "audit_calls_per_1000_blocks",
    ("audit", "peak_rss_mb"): "audit_peak_rss_mb",
    ("audit", "discrepancies"): "audit_discrepancies",
    ("follow", "p50_ms"): "follow_p50_ms",
    ("follow", "p95_ms"): "follow_p95_ms",
    ("follow", "peak_rss_mb"): "follow_peak_rss_mb",
    ("follow", "mismatches"): "follow_mismatches",
}


def medians(runs: list[Run]) -> dict[str, float]:
    out = {}
    for path, name in MEDIANS.items():
        values = [v for r in runs if (v := _at(r, path)) is not None]
        if values:
            out[name] = round(statistics.median(values), 2)
    return out


def _at(run: Run, path: tuple[str, ...]) -> Any:
    """run[path[0]][path[1]]..., or None where a step failed or lacks the number."""
    value: Any = run
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


def _num(value: float | None, fmt: str = "{:,.0f}") -> str:
    return "—" if value is None or math.isnan(value) else fmt.format(value)


def _ratio(value: float | None, lower: float | None) -> str:
    if value is None or not lower:
        return "—"
    return f"{value / lower:.0%}"


def table_rows(label: str, size: dict[str, Any]) -> list[list[str]]:
    """The rows of one size: the two ceilings, the backfill and live follow."""
    m: dict[str, float] = size["median"]
    runs: list[Run] = size["runs"]
    lower = min((m[k] for k in ("getlogs_per_s", "copy_per_s") if k in m), default=None)
    rows = [
        _rate_row(f"{label} raw eth_getLogs + orjson", runs, "getlogs", m, lower),
        _rate_row(f"{label} raw COPY (binary)", runs, "copy", m, lower),
        _rate_row(f"{label} backfill (CLI)", runs, "backfill", m, lower),
        _audit_row(f"{label} audit of it (CLI)", runs, m),
        _hosted_row(f"{label} backfill, hosted profile", size.get("hosted")),
        _follow_row(f"{label} live follow (daemon)", runs, m),
    ]
    suffix = f" [median of {len(runs)} runs]" if len(runs) > 1 else ""
    return [[*row[:4], row[4] + suffix] for row in rows if row]


def _first(runs: list[Run], name: str) -> dict[str, Any] | None:
    """The step's result in the first run that has it, preferring one without an error."""
    results: list[dict[str, Any]] = [r[name] for r in runs if name in r]
    good = [x for x in results if "error" not in x]
    return (good or results)[0] if results else None


def _rate_row(
    what: str, runs: list[Run], name: str, m: dict[str, float], lower: float | None
) -> list[str]:
    first = _first(runs, name)
    if first is None:
        return []
    if f"{name}_per_s" not in m:
        return [what, "—", "—", "—", f"FAILED: {first.get('error', '?')[-200:]}"]
    rate = m[f"{name}_per_s"]
    if name != "backfill":
        note = f"ceiling; {first['note']}"
        if name == "copy" and "copy_unindexed_per_s" in m:
            note += f" (no index: {_num(m['copy_unindexed_per_s'])}/s)"
        return [what, _num(rate), _ratio(rate, lower), "", note]
    note = (
        f"{first['events']:,} events, {first['blocks']:,} blocks in "
        f"{_num(m['backfill_wall_s'], '{:.1f}')} s wall "
        f"({_num(m.get('backfill_reported_per_s'))}/s by its own clock, start-up excluded; "
        f"{_num(m.get('backfill_blocks_per_s'))} blocks/s); CPU per event "
        f"{_num(m.get('cpu_us_total'))} µs = indexer {_num(m.get('cpu_us_indexer'))} + "
        f"PostgreSQL {_num(m.get('cpu_us_postgres'))} + node {_num(m.get('cpu_us_node'))}; "
        f"{_num(m.get('backfill_requests_per_1000_events'), '{:.2f}')} requests "
        f"({_num(m.get('backfill_calls_per_1000_events'), '{:.2f}')} calls) per 1,000 events; "
        f"RSS in the second half {_num(m.get('backfill_steady_rss_mb'), '{:.0f} MB')}; "
        f"oracle mismatches {_num(m.get('oracle_mismatches'), '{:.0f}')}"
    )
    rss = _num(m["backfill_peak_rss_mb"], "{:.0f} MB")
    return [what, _num(rate), _ratio(rate, lower), rss, note]


def _audit_row(what: str, runs: list[Run], m: dict[str, float]) -> list[str]:
    first = _first(runs, "audit")
    if first is None:
        return []
    if "audit_share" not in m:
        return [what, "—", "—", "—", f"FAILED: {first.get('error', '?')[-200:]}"]
    note = (
        f"receipts of {first['blocks']:,} blocks in {_num(m['audit_wall_s'], '{:.1f}')} s wall, "
        f"{_num(m['audit_share'], '{:.0%}')} of the backfill's; "
        f"{_num(m['audit_calls_per_1000_blocks'])} calls per 1,000 blocks; "
        f"discrepancies {_num(m.get('audit_discrepancies'), '{:.0f}')}"
    )
    return [what, "—", "—", _num(m["audit_peak_rss_mb"], "{:.0f} MB"), note]


def _hosted_row(what: str, hosted: dict[str, Any] | None) -> list[str]:
    if hosted is None:
        return []
    if "error" in hosted or "seconds" not in hosted:
        return [what, "—", "—", "—", f"FAILED: {str(hosted.get('error', '?'))[-200:]}"]
    profile = hosted["profile"]
    note = (
        f"{hosted['seconds']:.1f} s = {hosted['ratio_to_floor']}x the {hosted['floor_s']:.1f} s "
        f"the limits allow ({profile['latency_s'] * 1000:.0f} ms a request, "
        f"{profile['calls_per_second']:.0f} calls/s, {profile['max_results']:,} results / "
        f"{profile['max_range']:,} blocks per eth_getLogs); {hosted['requests']:,} requests, "
        f"{hosted['calls']:,} calls (floor {hosted['floor']['calls']:,}); "
        f"{hosted['rate_limited_requests']} answered 429, "
        f"{hosted['calls_refused_after_ramp']} calls refused after the first seconds; "
        f"oracle mismatches {hosted['oracle_mismatches']}"
    )
    rate = hosted["events"] / hosted["seconds"] if hosted["seconds"] else None
    return [what, _num(rate), "—", f"{hosted['peak_rss_mb']} MB", note]


def _follow_row(what: str, runs: list[Run], m: dict[str, float]) -> list[str]:
    first = _first(runs, "follow")
    if first is None:
        return []
    if "follow_p95_ms" not in m:
        return [what, "—", "—", "—", f"FAILED: {first.get('error', '?')[-200:]}"]
    note = (
        f"receipt to rows visible: p50 {m['follow_p50_ms']:.0f} ms, "
        f"p95 {m['follow_p95_ms']:.0f} ms over {len(first['latencies_ms'])} blocks, "
        f"poll {first['poll_interval_s']} s; mismatches after "
        f"{_num(m.get('follow_mismatches'), '{:.0f}')}"
    )
    return [what, "—", "—", _num(m["follow_peak_rss_mb"], "{:.0f} MB"), note]


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
    options = orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS
    path.write_bytes(orjson.dumps(report, option=options, default=_jsonable))


def _jsonable(value: object) -> object:
    if isinstance(value, frozenset | set):
        return sorted(value)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON: {type(value).__name__}")
