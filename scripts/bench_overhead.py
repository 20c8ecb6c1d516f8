"""Client overhead: drain time of N no-op tasks from a fast fake engine, per client.

Every contender completes the same pool of no-op tasks served by
``fake_engine.py`` (its own process on 127.0.0.1) with the same concurrency:

- ``handloop``: a hand-written ``requests.Session`` + ``ThreadPoolExecutor`` loop
  (fetch for the free slots, completes on the pool): the practical limit of requests.
- ``worker``: our :class:`camunda_ext.Worker`, handler ``complete().execute()``.
- ``pypi-readme``: ``camunda-external-task-client-python3`` with its README configuration.
- ``pypi-tuned``: the same client tuned for throughput (``pypi_worker.TUNED_CONFIG``,
  one worker thread per slot).

Each run starts a fresh fake engine and the contender in its own process; the
drain time runs from the first fetchAndLock to the last complete (fake engine's
clock), the client CPU from the contender's ``ready`` line to its stop. Rounds
rotate the order; the table gives medians and per-round ratios to ``handloop``.

    .venv/bin/python scripts/bench_overhead.py --tasks 20000 --rounds 3 --json overhead.json
    .venv/bin/python scripts/bench_overhead.py --tasks 500 --rounds 1      # smoke
    .venv/bin/python scripts/bench_overhead.py --rounds 0 --profile /tmp/prof   # profiles only
"""

from __future__ import annotations

import argparse
import pstats
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))

import benchkit

SCRIPTS = benchkit.SCRIPTS
CONTENDERS = ("handloop", "worker", "pypi-readme", "pypi-tuned")

#: Targets from the "Benchmarks" issue: (contender, what, bound), reported, never asserted.
TARGETS = (
    ("handloop", "tasks/s ratio >= 1.0", "tps", 1.0),
    ("handloop", "CPU per task ratio <= 1.0", "cpu", 1.0),
    ("pypi-readme", "tasks/s ratio >= 2.5", "tps", 2.5),
    ("pypi-tuned", "tasks/s ratio >= 1.4", "tps", 1.4),
)


def contender_argv(name: str, args: argparse.Namespace, url: str, pypi: Optional[str]) -> List[str]:
    limit = ["--time-limit", str(args.time_limit + 60)]
    if name == "handloop":
        return [
            sys.executable,
            str(SCRIPTS / "bench_clients.py"),
            "handloop",
            "--url",
            url,
            "--concurrency",
            str(args.concurrency),
            *limit,
        ]
    if name == "worker":
        return [
            sys.executable,
            str(SCRIPTS / "bench_clients.py"),
            "worker",
            "--url",
            url,
            "--concurrency",
            str(args.concurrency),
            *limit,
        ]
    assert pypi is not None
    config = name.split("-", 1)[1]
    return [
        pypi,
        str(SCRIPTS / "pypi_worker.py"),
        "noop",
        "--url",
        url,
        "--config",
        config,
        "--threads",
        str(args.concurrency),
        *limit,
    ]


def run_once(
    name: str,
    args: argparse.Namespace,
    pypi: Optional[str],
    logs: Path,
    tag: str,
    extra: Optional[List[str]] = None,
) -> Dict[str, Any]:
    """One drain of ``args.tasks`` tasks by one contender; its figures."""
    fake = benchkit.Child(
        [
            sys.executable,
            str(SCRIPTS / "fake_engine.py"),
            "--tasks",
            str(args.tasks),
            "--time-limit",
            str(args.time_limit + 120),
        ],
        name="fake-engine",
        log_path=logs / ("fake-%s.log" % tag),
    )
    client = None
    try:
        port = fake.expect("ready", 30)["port"]
        url = "http://127.0.0.1:%d/engine-rest" % port
        client = benchkit.Child(
            contender_argv(name, args, url, pypi) + (extra or []), name=name, log_path=logs / ("%s.log" % tag)
        )
        client.expect("ready", 60)
        drained = None
        deadline = time.monotonic() + args.time_limit
        while drained is None and time.monotonic() < deadline:
            drained = fake.poll_event("drained")
            if drained is None:
                time.sleep(0.05)
        final = client.stop()
        client = None
        served = fake.stop() or {}
    finally:
        if client is not None:
            client.stop()
        fake.stop()
    if final is None:
        raise benchkit.ChildError("%s sent no final line; see %s" % (name, logs))
    figures = drained if drained is not None else served
    completed = int(figures.get("completed", 0))
    seconds = float(figures["seconds"]) if drained is not None else args.time_limit
    cpu = float(final["cpu"])
    return {
        "contender": name,
        "drained": drained is not None,
        "completed": completed,
        "seconds": round(seconds, 3),
        "tasks_per_second": round(completed / seconds, 1) if seconds else 0.0,
        "client_cpu_seconds": round(cpu, 3),
        "client_cpu_per_1000": round(cpu / completed * 1000, 4) if completed else None,
        "server_cpu_share": round(float(figures.get("server_cpu", 0.0)) / seconds, 3) if seconds else None,
        "requests": figures.get("requests", {}),
        "client_stats": final.get("stats", {}),
    }


def summarize(runs: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Medians per contender and median per-round ratios to the hand-written loop."""
    rows = []
    for name in CONTENDERS:
        mine = [r for r in runs if r["contender"] == name]
        if not mine:
            continue
        row: Dict[str, Any] = {
            "contender": name,
            "runs": len(mine),
            "all_drained": all(r["drained"] for r in mine),
            "tasks_per_second": statistics.median(r["tasks_per_second"] for r in mine),
            "seconds": statistics.median(r["seconds"] for r in mine),
            "client_cpu_per_1000": statistics.median(r["client_cpu_per_1000"] or 0.0 for r in mine),
            "server_cpu_share": statistics.median(r["server_cpu_share"] or 0.0 for r in mine),
            "requests_per_task": statistics.median(
                sum(r["requests"].values()) / r["completed"] if r["completed"] else 0.0 for r in mine
            ),
        }
        tps_ratios = benchkit.round_ratios(runs, "contender", name, "handloop", "tasks_per_second")
        cpu_ratios = benchkit.round_ratios(runs, "contender", name, "handloop", "client_cpu_per_1000")
        row["tps_vs_handloop"] = round(statistics.median(tps_ratios), 3) if tps_ratios else None
        row["cpu_vs_handloop"] = round(statistics.median(cpu_ratios), 3) if cpu_ratios else None
        rows.append(row)
    return rows


def targets(runs: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Our Worker against each target, as median per-round ratios."""
    found = []
    for other, text, what, bound in TARGETS:
        metric = "tasks_per_second" if what == "tps" else "client_cpu_per_1000"
        ratios = benchkit.round_ratios(runs, "contender", "worker", other, metric)
        if not ratios:
            continue
        value = statistics.median(ratios)
        met = value >= bound if what == "tps" else value <= bound
        found.append({"against": other, "target": text, "measured": round(value, 3), "met": met})
    return found


#: The titles of the summary table's columns, in the order of :func:`summary_rows`.
SUMMARY_HEADERS = (
    "client",
    "tasks/s",
    "drain s",
    "client CPU s / 1000 tasks",
    "tasks/s vs handloop",
    "CPU/task vs handloop",
    "requests/task",
    "fake engine CPU (of one core)",
    "runs",
)


def summary_rows(report: Dict[str, Any]) -> List[List[Any]]:
    """A row per contender: the medians of its runs, ratios to the hand-written loop's."""
    return [
        [
            r["contender"],
            round(r["tasks_per_second"]),
            r["seconds"],
            round(r["client_cpu_per_1000"], 3),
            "%.2fx" % r["tps_vs_handloop"] if r["tps_vs_handloop"] is not None else "-",
            "%.2fx" % r["cpu_vs_handloop"] if r["cpu_vs_handloop"] is not None else "-",
            round(r["requests_per_task"], 2),
            "%.0f%%" % (100 * r["server_cpu_share"]),
            "%d%s" % (r["runs"], "" if r["all_drained"] else " (time limit hit)"),
        ]
        for r in report["summary"]
    ]


def target_rows(report: Dict[str, Any]) -> List[List[Any]]:
    """``[comparison, target, measured, met or MISSED]`` per target."""
    return [
        ["Worker vs %s" % t["against"], t["target"], "%.2fx" % t["measured"], "met" if t["met"] else "MISSED"]
        for t in report["targets"]
    ]


def markdown(report: Dict[str, Any]) -> str:
    table = benchkit.markdown_table(SUMMARY_HEADERS, summary_rows(report))
    goals = benchkit.markdown_table(
        ["comparison", "target", "measured (median of rounds)", ""], target_rows(report)
    )
    params = report["parameters"]
    head = "%d no-op tasks, concurrency %d, %d round(s), medians; machine: %s, %s CPUs, %.0f GiB" % (
        params["tasks"],
        params["concurrency"],
        params["rounds"],
        report["machine"]["cpu_model"],
        report["machine"]["nproc"],
        report["machine"]["memory_gib"],
    )
    return "%s\n\n%s\n\n%s\n" % (head, table, goals)


def profile_report(profiles: Dict[str, Any], top: int = 30) -> str:
    """Worker vs hand-written loop: CPU ms per 1000 tasks by function, largest differences first.

    The profiler's own overhead inflates every figure; compare them with each other.
    """
    per_task: Dict[str, Dict[str, float]] = {}
    cumulative: Dict[str, Dict[str, float]] = {}
    for name, (path, completed) in profiles.items():
        stats = pstats.Stats(path).stats  # type: ignore[attr-defined]
        scale = 1e6 / max(completed, 1)  # seconds per task -> ms per 1000 tasks
        per_task[name] = {}
        cumulative[name] = {}
        for (filename, line, function), (_cc, _nc, tottime, cumtime, _callers) in stats.items():
            key = "%s:%d(%s)" % (_short(filename), line, function)
            per_task[name][key] = tottime * scale
            cumulative[name][key] = cumtime * scale
    worker, handloop = per_task["worker"], per_task["handloop"]
    lines = [
        "CPU ms per 1000 tasks under the profiler: worker %.0f, handloop %.0f"
        % (sum(worker.values()), sum(handloop.values())),
        "",
        "Own time (tottime), largest worker - handloop differences:",
        "%10s %10s %10s  %s" % ("worker", "handloop", "extra", "function"),
    ]
    keys = sorted(
        set(worker) | set(handloop), key=lambda k: worker.get(k, 0.0) - handloop.get(k, 0.0), reverse=True
    )
    for key in keys[:top]:
        w, h = worker.get(key, 0.0), handloop.get(key, 0.0)
        lines.append("%10.1f %10.1f %+10.1f  %s" % (w, h, w - h, key))
    lines += ["", "Cumulative time of the worker's largest subtrees (camunda_ext and requests):"]
    mine = [(v, k) for k, v in cumulative["worker"].items() if "camunda_ext" in k or "requests/" in k]
    for value, key in sorted(mine, reverse=True)[:top]:
        lines.append("%10.1f  %s" % (value, key))
    return "\n".join(lines)


def _short(filename: str) -> str:
    for marker in ("site-packages/", "/lib/python3", str(SCRIPTS.parent) + "/"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=20_000, help="no-op tasks per drain (default 20000)")
    parser.add_argument("--concurrency", type=int, default=20, help="handler slots of every client")
    parser.add_argument("--rounds", type=int, default=3, help="rounds, order rotated (default 3)")
    parser.add_argument("--time-limit", type=float, default=180.0, help="seconds per drain (default 180)")
    parser.add_argument("--contenders", default=",".join(CONTENDERS), help="comma-separated subset")
    parser.add_argument("--pypi-python", help="interpreter with the PyPI client (default: its own venv)")
    parser.add_argument("--json", help="write the report as JSON here")
    parser.add_argument("--markdown", help="write the tables as Markdown here")
    parser.add_argument(
        "--profile", help="after the rounds, profile a handloop and a Worker drain (PREFIX.*.pstats)"
    )
    args = parser.parse_args(argv)
    names = [n for n in args.contenders.split(",") if n]
    unknown = set(names) - set(CONTENDERS)
    if unknown:
        parser.error("unknown contenders: %s" % ", ".join(sorted(unknown)))
    pypi = None
    if any(n.startswith("pypi") for n in names):
        pypi = benchkit.pypi_python(args.pypi_python, log=lambda m: print(m, file=sys.stderr))
    runs: List[Dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-overhead-") as tmp:
        logs = Path(tmp)
        for number in range(args.rounds):
            order = benchkit.rotated(names, number)
            for name in order:
                print("round %d: %s ..." % (number + 1, name), file=sys.stderr, end=" ", flush=True)
                result = run_once(name, args, pypi, logs, "%s-%d" % (name, number))
                result["round"] = number
                runs.append(result)
                print(
                    "%.0f tasks/s, %.3f CPU s/1000%s"
                    % (
                        result["tasks_per_second"],
                        result["client_cpu_per_1000"] or 0.0,
                        "" if result["drained"] else " (time limit: %d done)" % result["completed"],
                    ),
                    file=sys.stderr,
                )
        if args.profile:
            profiles = {}
            for name in ("handloop", "worker"):
                path = "%s.%s.pstats" % (args.profile, name)
                print(
                    "profiling one %s drain (CPU-time cProfile on every thread) ..." % name, file=sys.stderr
                )
                profiled = run_once(
                    name, args, pypi, logs, "profile-" + name, ["--profile", str(Path(path).resolve())]
                )
                profiles[name] = (path, profiled["completed"])
            print(profile_report(profiles))
    report = {
        "parameters": {
            "tasks": args.tasks,
            "concurrency": args.concurrency,
            "rounds": args.rounds,
            "time_limit": args.time_limit,
        },
        "machine": benchkit.machine(),
        "summary": summarize(runs),
        "targets": targets(runs),
        "runs": runs,
    }
    text = markdown(report)
    print(text)
    benchkit.write_json(args.json, report)
    if args.markdown:
        Path(args.markdown).write_text(text, encoding="utf-8")
    return 0 if all(r["drained"] for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
