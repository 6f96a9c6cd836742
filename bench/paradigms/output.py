"""Where bench_paradigms.py's results go: the table printed, docs/bench/results.md and the plot (bench/out/quick/
for a smoke run), also again from a run's raw numbers."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from paradigms import report
from paradigms.engine import log

HERE = Path(__file__).resolve().parent
OUT = HERE.parent / "out"
DOCS = HERE.parents[1] / "docs" / "bench"


def write_results(results: report.Results, args: argparse.Namespace) -> None:
    print(results.table())
    if args.no_write:
        return
    target = OUT / "quick" if args.quick else DOCS  # a smoke run never replaces the committed numbers
    target.mkdir(parents=True, exist_ok=True)
    try:
        results.plot(target / "handoff.png")
    except ImportError:
        log("bench: matplotlib is not installed (pip install matplotlib): no plot written")
    (target / "results.md").write_text(results.markdown())
    log(f"bench: wrote {target / 'results.md'} and {target / 'handoff.png'} ({results.meta['seconds']:.0f} s)")


def rerender(path: Path, args: argparse.Namespace) -> None:
    """results.md and the plot again from a run's raw numbers (after a change to the report's text)."""
    raw = json.loads(path.read_text())
    results = report.Results(sizes=raw["sizes"], rounds=raw["rounds"], records=raw["records"], launch=raw["launch"],
                             memory=raw["memory"], profile=raw["profile"], notes=raw["meta"].get("notes", []),
                             meta=raw["meta"], command=raw["command"], machine=raw["machine"], date=raw["date"],
                             scaling=raw.get("scaling", []), idle=raw.get("idle", {}))
    args.quick = raw.get("quick", False)
    write_results(results, args)
