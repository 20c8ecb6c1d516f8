"""Render the JSON reports of ``bench_overhead.py`` and ``loadtest.py`` as RST tables.

BENCHMARKS.rst takes its tables from here, so that no figure is typed in::

    .venv/bin/python scripts/bench_report.py overhead.json load.json idle.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_overhead
import benchkit
import loadtest


def overhead_tables(report: Dict[str, Any]) -> str:
    params = report["parameters"]
    table = benchkit.rst_table(bench_overhead.SUMMARY_HEADERS, bench_overhead.summary_rows(report))
    goals = benchkit.rst_table(
        ["comparison", "target", "measured", "result"], bench_overhead.target_rows(report)
    )
    per_run = benchkit.rst_table(
        ["round", "client", "tasks/s", "client CPU s / 1000 tasks"],
        [
            [r["round"] + 1, r["contender"], r["tasks_per_second"], r["client_cpu_per_1000"]]
            for r in sorted(report["runs"], key=lambda r: (r["round"], r["contender"]))
        ],
    )
    head = "%d no-op tasks per drain, concurrency %d, %d rounds (order rotated); medians." % (
        params["tasks"],
        params["concurrency"],
        params["rounds"],
    )
    return "%s\n\n%s\n\nTargets (median of the per-round ratios):\n\n%s\n\nEvery run:\n\n%s\n" % (
        head,
        table,
        goals,
        per_run,
    )


def load_tables(report: Dict[str, Any]) -> str:
    params = report["parameters"]
    parts = []
    if report.get("results"):
        parts.append(loadtest.describe(params))
        parts.append(
            benchkit.rst_table(
                [title for _, title in loadtest.COLUMNS], loadtest.table_rows(report["results"])
            )
        )
        if params.get("rounds", 1) > 1:
            parts.append("Medians of the %d rounds (order rotated):" % params["rounds"])
            parts.append(
                benchkit.rst_table(
                    [title for _, title in loadtest.SUMMARY_COLUMNS],
                    loadtest.summary_rows(report),
                )
            )
        parts.append("Targets (ratios: median of the per-round ratios):")
        parts.append(benchkit.rst_table(["target", "measured", "result"], loadtest.target_rows(report)))
        for result in report["results"]:
            kinds = ", ".join("%s %d" % item for item in sorted(result["engine_requests_by_kind"].items()))
            parts.append("``%s`` (round %d) requests: %s." % (result["client"], result["round"], kinds))
            if result["engine_error_answers"]:
                errors = ", ".join("%s: %d" % item for item in result["engine_error_answers"].items())
                parts.append("``%s`` engine error answers: %s." % (result["client"], errors))
    if report.get("idle"):
        idle = report["idle"]
        parts.append(
            benchkit.rst_table(
                ["idle client", "seconds counted", "requests", "requests/min", "target", "result"],
                [
                    [
                        idle["client"],
                        idle["idle_seconds"],
                        idle["requests"],
                        idle["requests_per_minute"],
                        idle["target"],
                        "met" if idle["met"] else "missed",
                    ]
                ],
            )
        )
    return "\n\n".join(parts) + "\n"


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reports", nargs="+", help="JSON files of bench_overhead.py or loadtest.py")
    args = parser.parse_args(argv)
    for path in args.reports:
        report = json.loads(Path(path).read_text(encoding="utf-8"))
        print(".. %s\n" % Path(path).name)
        print(load_tables(report) if "results" in report else overhead_tables(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
