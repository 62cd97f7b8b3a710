"""The scalper CLI: bad input gives one line naming the input and the fix, exits non-zero, writes nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SCALPER = [sys.executable, "-m", "dagster_project.cli"]


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "DAGSTER_HOME": str(cwd / "dh")}
    return subprocess.run(SCALPER + args, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(
    "args, says",
    [
        (["--symbol", "DOGEXYZ", "--start", "2024-08-08", "--end", "2024-08-08"], "unknown symbol 'DOGEXYZ'"),
        (["--start", "2024-08-09", "--end", "2024-08-08"], "--end 2024-08-08 is before --start 2024-08-09"),
        (["--start", "2024-13-01", "--end", "2024-08-08"], "--start '2024-13-01' is not a date"),
        (
            ["--start", "2024-08-08", "--end", "2024-08-08", "--signal-strength", "-1"],
            "--signal-strength -1.0 is negative",
        ),
        (
            ["--start", "2024-08-08", "--end", "2024-08-08", "--lake", "ftp://nowhere/lake"],
            "unsupported scheme 'ftp'",
        ),
        (["--start", "2024-08-08", "--end", "2024-08-08", "--config", "bad.yaml"], "is not valid YAML"),
        (
            ["--start", "2024-08-08", "--end", "2024-08-08", "--config", "unknown.yaml"],
            "unknown parameter(s) speed",
        ),
    ],
)
def test_bad_input_is_one_line_and_nonzero(tmp_path: Path, args: list[str], says: str):
    (tmp_path / "bad.yaml").write_text("seed: [1, 2\n")
    (tmp_path / "unknown.yaml").write_text("speed: 3\n")
    result = run(["ingest", "synthetic", *args], tmp_path)
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert says in lines[0]
    assert not (tmp_path / "lake").exists()


def test_unwritable_lake_is_refused(tmp_path: Path):
    (tmp_path / "afile").write_text("x")
    result = run(["lake", "ls", "--lake", str(tmp_path / "afile" / "lake")], tmp_path)
    assert result.returncode == 2
    assert "is not writable" in result.stderr


def test_lake_ls_on_an_empty_lake(tmp_path: Path):
    result = run(["lake", "ls", "--lake", str(tmp_path / "lake")], tmp_path)
    assert result.returncode == 0, result.stderr
    assert "empty lake" in result.stdout
