"""The committed sql/migrations/atlas.sum matches its files (so CI sees an edited migration without Atlas)."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.atlas_sum import check_sum_file, compute_sum, main, migration_files, write_sum_file
from harness.migrations import transactional

ROOT = Path(__file__).resolve().parents[2]

MIGRATIONS = ROOT / "sql" / "migrations"


def test_committed_sum_matches_the_migrations() -> None:
    committed = (MIGRATIONS / "atlas.sum").read_text(encoding="utf-8")

    assert committed == compute_sum(MIGRATIONS), (
        "sql/migrations/atlas.sum is stale: run 'atlas migrate hash --dir file://sql/migrations' "
        "(or python scripts/harness/atlas_sum.py --write sql/migrations)"
    )


def test_every_migration_is_listed_in_order() -> None:
    lines = (MIGRATIONS / "atlas.sum").read_text(encoding="utf-8").splitlines()

    assert [line.split(" ")[0] for line in lines[1:]] == [p.name for p in migration_files(MIGRATIONS)]
    assert all(p.name[:14].isdigit() and p.name[14] == "_" for p in migration_files(MIGRATIONS))


def test_only_the_slot_migration_runs_outside_a_transaction() -> None:
    outside = [p.name for p in migration_files(MIGRATIONS) if not transactional(p)]

    assert len(outside) == 1
    assert outside[0].endswith("_ext_task_slot.sql")


def test_no_password_in_the_migrations() -> None:
    for path in migration_files(MIGRATIONS):
        assert "password" not in path.read_text(encoding="utf-8").lower().replace("no password here", "")


@pytest.fixture
def directory(tmp_path: Path) -> Path:
    (tmp_path / "20240101000000_a.sql").write_bytes(b"CREATE TABLE a (id int);\n")
    (tmp_path / "20240102000000_b.sql").write_bytes(b"CREATE TABLE b (id int);\n")
    (tmp_path / "notes.txt").write_bytes(b"not a migration\n")
    return tmp_path


def test_sum_of_a_known_directory(directory: Path) -> None:
    # The value `atlas migrate hash` (v1.2.3) writes for these two files.
    assert compute_sum(directory) == (
        "h1:CxxgpeIEGjvXY47bSlDSX3fyzObmcfgkAQ2q0DQNs/4=\n"
        "20240101000000_a.sql h1:vnjepTRgNyxUIqLQW5AERyOdkApBX8Oww4FcIJoejAs=\n"
        "20240102000000_b.sql h1:zboMCRm02vJDooHeFRtrrISan6bq+alv9oKU2thUe1I=\n"
    )


def test_a_file_hash_covers_the_files_before_it(directory: Path) -> None:
    before = compute_sum(directory).splitlines()
    (directory / "20240101000000_a.sql").write_bytes(b"CREATE TABLE a (id bigint);\n")
    after = compute_sum(directory).splitlines()

    assert all(old != new for old, new in zip(before, after))


def test_sum_ignore_directive(directory: Path) -> None:
    (directory / "20240101500000_skip.sql").write_bytes(b"-- atlas:sum ignore\nSELECT 1;\n")
    lines = compute_sum(directory).splitlines()

    assert [line.split(" ")[0] for line in lines[1:]] == ["20240101000000_a.sql", "20240102000000_b.sql"]


def test_write_and_check(directory: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert not check_sum_file(directory)
    assert main(["--check", str(directory)]) == 1

    write_sum_file(directory)

    assert check_sum_file(directory)
    assert main([str(directory)]) == 0
    (directory / "20240102000000_b.sql").write_bytes(b"CREATE TABLE b (id bigint);\n")
    assert not check_sum_file(directory)
