"""The report: a markdown table (probe → measured → verdict) and the same rows as JSON."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench.probes.registry import Row


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown(rows: list[Row], meta: dict[str, Any]) -> str:
    lines = [
        f"# respgate reliability probes: {meta['label']}",
        "",
        f"Command: `{meta['command']}`",
        "",
        f"Source tree under test: `{meta['src']}` (commit {meta.get('src_commit')})",
        "",
        f"{sum(row.ok for row in rows)} of {len(rows)} rows meet the target.",
        "",
        "| probe | case | backend | measured | verdict | load (1/5/15 min) | s |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        load = "/".join(f"{x:.1f}" for x in row.loadavg)
        lines.append(
            f"| {row.probe} | {_cell(row.case)} | {row.backend} | {_cell(row.outcome)} | "
            f"{row.verdict} | {load} | {row.seconds:.0f} |"
        )
    notes = [(row, note) for row in rows for note in row.notes]
    if notes:
        lines += ["", "Notes:", ""]
        lines += [f"- {row.probe} / {row.case} ({row.backend}): {note}" for row, note in notes]
    targets: dict[str, str] = {}
    for row in rows:
        targets.setdefault(f"{row.probe} / {row.case}", row.target)
    lines += ["", "Targets (from the issue):", ""]
    lines += [f"- {name}: {target}" for name, target in targets.items()]
    lines += ["", "Machine:", "", "```json", json.dumps(meta["machine"], indent=2), "```", ""]
    return "\n".join(lines)


def write(rows: list[Row], meta: dict[str, Any], stem: Path) -> tuple[Path, Path]:
    stem.parent.mkdir(parents=True, exist_ok=True)
    md, js = stem.with_suffix(".md"), stem.with_suffix(".json")
    md.write_text(markdown(rows, meta))
    js.write_text(json.dumps({"meta": meta, "rows": [asdict(row) for row in rows]}, indent=2, default=str) + "\n")
    return md, js
