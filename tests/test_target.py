"""``--driver`` against NVIDIA's driver table: a branch outside it is bad input (one line, exit 2), never a guess.

Before, ``--driver 999`` became CUDA 13.3 (the newest row) with status ok. The known range here is read from
the shipped table (condafix/data/cuda.json), the data the refusal must name.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest

from condafix.detect.target import from_options, read_drivers_file
from condafix.errors import UsageError

from .conftest import FIXTURES

ROWS = json.loads(resources.files("condafix.data").joinpath("cuda.json").read_text())["min_driver"]["rows"]
LOW = min(int(r["linux"].split(".")[0]) for r in ROWS)
HIGH = max(int(r["linux"].split(".")[0]) for r in ROWS)
RANGE = f"branches {LOW} to {HIGH} (CUDA {ROWS[0]['cuda']} to {ROWS[-1]['cuda']}"


def condafix(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "condafix", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "NO_COLOR": "1"},
        check=False,
    )


@pytest.mark.parametrize("driver", ["999", f"{HIGH + 5}.10.01", "1000.1"])
def test_a_driver_newer_than_the_table_is_refused_in_from_options(driver: str) -> None:
    with pytest.raises(UsageError, match="newer than condafix's driver table") as raised:
        from_options(cudas=[], drivers=[driver], drivers_file=None)
    assert RANGE in str(raised.value) and "\n" not in str(raised.value)


@pytest.mark.parametrize(("driver", "cuda"), [("565.57.01", "12.6"), ("535.104.05", "12.2"), ("470.82.01", "11.4")])
def test_known_branches_still_map_to_their_cuda(driver: str, cuda: str) -> None:
    """565 has no row of its own (12.7 never shipped) but lies inside the table: CUDA 12.6, as before."""
    assert from_options(cudas=[], drivers=[driver], drivers_file=None).cuda == cuda


def test_the_newest_row_of_the_table_is_known() -> None:
    newest = max(ROWS, key=lambda r: tuple(int(p) for p in r["cuda"].split(".")))
    assert from_options(cudas=[], drivers=[newest["linux"]], drivers_file=None).cuda == newest["cuda"]


@pytest.mark.parametrize(
    "argv",
    [
        ["doctor", "--driver", "999"],
        ["doctor", "--driver", "999", "--check"],
        ["cuda", "-p", "envs/none", "--driver", "999"],
        ["env", str(FIXTURES / "pixi" / "pixi.toml"), "--driver", "999", "--offline"],
        ["lock", str(FIXTURES / "lockfiles" / "explicit-linux-64.txt"), "--driver", "999"],
        ["explain", "--driver", "999", "Unsupported .version 7.7; current version is '7.4'"],
    ],
)
def test_every_command_refuses_an_unknown_branch_in_one_line(argv: list[str], tmp_path: Path) -> None:
    done = condafix(*argv, cwd=tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "driver 999 (branch 999) is newer than" in lines[0] and RANGE in lines[0]
    assert "status: ok" not in done.stdout and "Traceback" not in done.stderr


def test_the_json_error_document_says_exit_2() -> None:
    done = condafix("doctor", "--driver", "999", "--json")
    document = json.loads(done.stdout)
    assert done.returncode == 2 and document["exit_code"] == 2 and RANGE in document["error"]["summary"]


def test_a_drivers_file_names_the_line_with_the_unknown_branch(tmp_path: Path) -> None:
    nodes = tmp_path / "nodes.txt"
    nodes.write_text("# the cluster\n550.54.14\n999.1  # the new node\n")
    with pytest.raises(UsageError, match=r"nodes\.txt:3: driver 999\.1 \(branch 999\) is newer than") as raised:
        read_drivers_file(nodes)
    assert RANGE in str(raised.value)
    done = condafix("cuda", "-p", str(tmp_path / "env"), "--drivers-file", str(nodes))
    assert done.returncode == 2 and "nodes.txt:3:" in done.stderr and len(done.stderr.strip().splitlines()) == 1
