"""How the benchmark scripts turn runs into medians, ratios and verdicts on the targets."""

from __future__ import annotations

import ctypes
import ctypes.util
import datetime
import os
import subprocess
import sys
import threading
import time
from typing import Any, Dict, List

import benchkit
import loadtest
import loan_granting
import pytest

#: benchkit reads process and thread CPU (and thread names) from /proc, which only
#: Linux has; run these on Linux, as CI does.
needs_proc = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="needs Linux's /proc, where benchkit reads process CPU"
)


def run(client: str, number: int, **figures: Any) -> Dict[str, Any]:
    """One load-test result with neutral figures, overridden by ``figures``."""
    result = {
        "round": number,
        "client": client,
        "tasks_per_second": 100.0,
        "latency_p50": 10.0,
        "latency_p99": 20.0,
        "pickup_p50": 5.0,
        "engine_requests_per_task": 1.1,
        "client_cpu_per_1000_tasks": 1.0,
        "failures": 0,
        "report_errors": 0,
        "stalls": 0,
        "all_finished": True,
    }
    result.update(figures)
    return result


def test_each_round_starts_with_the_next_client() -> None:
    names = ["rest", "pypi", "cdc-wake"]
    assert [benchkit.rotated(names, turn) for turn in range(4)] == [
        ["rest", "pypi", "cdc-wake"],
        ["pypi", "cdc-wake", "rest"],
        ["cdc-wake", "rest", "pypi"],
        ["rest", "pypi", "cdc-wake"],
    ]


def test_ratios_pair_runs_of_the_same_round_only() -> None:
    runs = [
        run("rest", 1, tasks_per_second=200.0),
        run("pypi", 1, tasks_per_second=100.0),
        run("rest", 2, tasks_per_second=150.0),
        run("pypi", 2, tasks_per_second=50.0),
        run("rest", 3, tasks_per_second=999.0),  # pypi did not run in round 3
    ]
    assert benchkit.round_ratios(runs, "client", "rest", "pypi", "tasks_per_second") == [2.0, 3.0]


def test_a_round_where_the_baseline_measured_nothing_is_left_out() -> None:
    runs = [run("rest", 1), run("pypi", 1, tasks_per_second=0.0)]
    assert benchkit.round_ratios(runs, "client", "rest", "pypi", "tasks_per_second") == []


def test_the_throughput_target_is_judged_on_the_median_round() -> None:
    runs = [
        run("rest", 1, tasks_per_second=210.0),
        run("pypi", 1, tasks_per_second=100.0),
        run("rest", 2, tasks_per_second=150.0),
        run("pypi", 2, tasks_per_second=100.0),
        run("rest", 3, tasks_per_second=260.0),
        run("pypi", 3, tasks_per_second=100.0),
    ]
    (throughput, clean) = loadtest.targets(runs)
    assert throughput == {
        "target": "REST Worker tasks/s >= 2x the PyPI client (README)",
        "measured": "2.10x",
        "met": True,
    }
    assert clean["met"]


def test_a_slower_median_round_misses_the_throughput_target() -> None:
    runs = [run("rest", n, tasks_per_second=190.0) for n in (1, 2)] + [run("pypi", n) for n in (1, 2)]
    assert loadtest.targets(runs)[0]["met"] is False


def test_wake_mode_is_held_to_its_request_budget_and_to_the_rest_latency() -> None:
    runs = [
        run("rest", 1, latency_p50=15.0, pickup_p50=6.0),
        run("cdc-wake", 1, latency_p50=18.0, pickup_p50=5.5, engine_requests_per_task=1.2),
    ]
    verdicts = {t["target"]: t for t in loadtest.targets(runs)}
    # Judged on pickup latency, not on the instances' (which the throughput decides).
    assert verdicts["CDC wake p50 pickup latency <= REST long polling"]["met"] is True
    assert verdicts["CDC wake engine requests/task <= 1.15"] == {
        "target": "CDC wake engine requests/task <= 1.15",
        "measured": "1.20",
        "met": False,
    }


def test_paced_runs_judge_no_throughput() -> None:
    results = [run("rest", 1), run("pypi", 1)]

    judged = [t["target"] for t in loadtest.targets(results, paced=True)]

    assert not [text for text in judged if "tasks/s" in text]
    assert [t["target"] for t in loadtest.targets(results) if "tasks/s" in t["target"]]


def test_one_stall_in_any_run_fails_the_clean_run_target() -> None:
    runs = [run("rest", 1), run("pypi", 1), run("rest", 2, stalls=1), run("pypi", 2)]
    assert loadtest.targets(runs)[-1] == {
        "target": "no failed task and no stall in any run",
        "measured": "-",
        "met": False,
    }


def test_summary_gives_medians_and_sums_failures_over_runs() -> None:
    runs = [
        run("rest", 1, tasks_per_second=100.0, failures=1),
        run("rest", 2, tasks_per_second=300.0, report_errors=2),
        run("rest", 3, tasks_per_second=200.0, stalls=4, all_finished=False),
    ]
    (row,) = loadtest.summarize(runs)
    assert row["client"] == "rest"
    assert row["runs"] == 3
    assert row["tasks_per_second"] == 200.0
    assert row["failures"] == 3
    assert row["stalls"] == 4
    assert row["all_finished"] is False


def test_a_figure_that_some_runs_lack_is_the_median_of_the_others() -> None:
    runs = [
        run("rest", 1, engine_cpu_per_1000_tasks=6.0),
        run("rest", 2, engine_cpu_per_1000_tasks=None),  # an engine not of our own
        run("rest", 3, engine_cpu_per_1000_tasks=8.0),
        run("pypi", 1, engine_cpu_per_1000_tasks=None),
    ]
    rest, pypi = loadtest.summarize(runs)
    assert rest["engine_cpu_per_1000_tasks"] == 7.0
    assert pypi["engine_cpu_per_1000_tasks"] is None
    assert (
        loadtest.summary_rows({"summary": [pypi]})[0][
            loadtest.SUMMARY_COLUMNS.index(("engine_cpu_per_1000_tasks", "engine CPU s/1000 tasks"))
        ]
        == "-"
    )


@needs_proc
def test_the_cpu_of_another_process_is_read_per_thread_name() -> None:
    burnt = threading.Event()  # signals: the thread has spent its CPU and is still alive
    release = threading.Event()  # signals: the snapshot is taken, the thread may end

    def burn() -> None:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        libc.prctl(15, b"cpu-burner", 0, 0, 0)  # PR_SET_NAME: the name /proc shows
        end = time.thread_time() + 0.3
        while time.thread_time() < end:
            pass
        burnt.set()
        release.wait(10)

    thread = threading.Thread(target=burn)
    before = benchkit.thread_cpu_seconds(os.getpid())
    thread.start()
    try:
        assert burnt.wait(10)
        after = benchkit.thread_cpu_seconds(os.getpid())
    finally:
        release.set()
        thread.join()
    spent = benchkit.cpu_spent(before, after)
    assert spent["cpu-burner"] >= 0.25
    assert all(seconds >= 0 for seconds in spent.values())


def test_cpu_of_a_process_that_is_gone_is_empty() -> None:
    assert benchkit.thread_cpu_seconds(2**22 + 1) == {}  # above Linux's largest pid
    assert benchkit.process_tree_cpu_seconds(2**22 + 1) is None


_BURN_THEN_WAIT = """
import sys, time
end = time.process_time() + 0.3
while time.process_time() < end:
    pass
print("burnt", flush=True)
sys.stdin.read()
"""


@needs_proc
def test_the_cpu_of_a_process_tree_counts_its_children_alive_and_ended() -> None:
    before = benchkit.process_tree_cpu_seconds(os.getpid())
    child = subprocess.Popen(
        [sys.executable, "-c", _BURN_THEN_WAIT], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None and child.stdout.readline() == "burnt\n"
        alive = benchkit.process_tree_cpu_seconds(os.getpid())
    finally:
        child.communicate("")  # ends it; waiting for it reaps it into our cutime
    ended = benchkit.process_tree_cpu_seconds(os.getpid())
    assert before is not None and alive is not None and ended is not None
    assert alive - before >= 0.25
    assert ended >= alive


@needs_proc
def test_the_cpu_of_children_is_counted_by_the_start_of_their_command_line() -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", _BURN_THEN_WAIT], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None and child.stdout.readline() == "burnt\n"
        burner = benchkit.children_cpu_seconds(os.getpid(), "%s -c" % sys.executable)
        others = benchkit.children_cpu_seconds(os.getpid(), "postgres: walsender")
    finally:
        child.communicate("")
    assert burner >= 0.25
    assert others == 0


def test_task_stats_count_a_completion_after_the_lock_expired_as_a_stall() -> None:
    stats = benchkit.TaskStats()
    now = datetime.datetime.now(datetime.timezone.utc)
    stats.picked_up(now - datetime.timedelta(seconds=3))
    stats.record(now + datetime.timedelta(seconds=30))  # in time
    stats.record(now - datetime.timedelta(seconds=2))  # its lock had run out
    stats.report_error()
    figures = stats.figures()
    assert (figures["completed"], figures["stalls"], figures["report_errors"]) == (2, 1, 1)
    assert figures["worst_overrun_seconds"] >= 2.0
    (pickup,) = figures["pickup_seconds"]
    assert 3.0 <= pickup < 60.0


class PacedClock:
    """Stands in for the ``time`` module: ``sleep`` moves the clock instead of waiting."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: List[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class Starter:
    """A client that starts instances at once."""

    def start_process_instance(self, key: str, business_key: str) -> Any:
        return type("Instance", (), {"id": "pi-" + business_key})()


def test_a_rate_spreads_the_instance_starts_over_time(monkeypatch) -> None:
    clock = PacedClock()
    monkeypatch.setattr(loan_granting, "time", clock)

    ids = loan_granting.start_instances(Starter(), 5, concurrency=1, rate=2.0)  # type: ignore[arg-type]

    assert ids == ["pi-loan-%d" % n for n in range(5)]
    # Each start waits for its turn: 0.5 s apart at 2 instances/s.
    assert clock.sleeps == [0.0, 0.5, 0.5, 0.5, 0.5]


def test_without_a_rate_every_instance_is_started_at_once(monkeypatch) -> None:
    clock = PacedClock()
    monkeypatch.setattr(loan_granting, "time", clock)

    assert len(loan_granting.start_instances(Starter(), 5, concurrency=2)) == 5  # type: ignore[arg-type]

    assert clock.sleeps == []


@pytest.mark.parametrize("where", [["--h2"], ["--engine-url", "http://127.0.0.1:9/engine-rest"]])
def test_a_cluster_needs_a_postgresql_of_our_own(where: List[str], capsys) -> None:
    with pytest.raises(SystemExit) as stopped:
        loadtest.main(["--nodes", "2", *where])
    assert stopped.value.code == 2
    assert "--nodes" in capsys.readouterr().err


def test_a_report_says_how_many_engine_nodes_ran() -> None:
    params = {"instances": 10, "database": "PostgreSQL", "max_tasks": 20, "concurrency": 8, "warm_up": 0}
    assert "engine nodes" not in loadtest.describe(params)
    assert "2 engine nodes on that database" in loadtest.describe({**params, "nodes": 2})
