"""The results as a table for people, or JSON for scripts."""

from __future__ import annotations

import json
from typing import Any

from edgestore.bench.runner import PhaseResult

__all__ = ["table", "as_json"]

COLUMNS = [("scenario", "scenario", "<"), ("phase", "phase", "<"), ("ops", "ops", ">"), ("errors", "errors", ">"),
           ("seconds", "s", ">"), ("ops_per_s", "ops/s", ">"), ("mib_per_s", "MiB/s", ">"),
           ("p50_ms", "p50 ms", ">"), ("p99_ms", "p99 ms", ">")]


def table(results: list[PhaseResult], title: str) -> str:
    rows = [r.row() for r in results]
    cells = [[str(row[key]) for key, _, _ in COLUMNS] for row in rows]
    widths = [max(len(head), *(len(c[i]) for c in cells)) for i, (_, head, _) in enumerate(COLUMNS)]
    lines = [title, "  ".join(f"{head:{align}{w}}" for (_, head, align), w in zip(COLUMNS, widths, strict=True))]
    for c in cells:
        lines.append("  ".join(f"{v:{align}{w}}" for v, (_, _, align), w in zip(c, COLUMNS, widths, strict=True)))
    errors = [r for r in results if r.first_error]
    for r in errors:
        lines.append(f"  first error in {r.scenario} {r.phase}: {r.first_error}")
    return "\n".join(lines)


def as_json(results: list[PhaseResult], target: str, settings: dict[str, Any]) -> str:
    return json.dumps({"target": target, "settings": settings, "phases": [r.row() for r in results]}, indent=2)
