"""README's exit-code table against what the commands really return (both front ends, and conda doctor).

The expected codes are read from the README's table, so the table and the commands cannot drift apart;
the conda cases run real conda (skipped without it).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from .realconda import BROKEN_SPECS, RealConda, real_conda  # noqa: F401  (fixture)
from .test_conda_plugin import plugged  # noqa: F401  (fixture)

README = Path(__file__).resolve().parent.parent / "README.md"


def table() -> list[tuple[str, str, str]]:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("### Exit codes") :]
    section = section[: section.index("\n## ")]
    rows = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0] not in ("command", "---"):
            rows.append((cells[0], cells[1], cells[2]))
    return rows


def expected(command: str, when: str) -> int:
    """The one row whose command cell names ``command`` and whose ``when`` cell says ``when``."""
    found = [exit_ for cmd, exit_, why in table() if command in cmd and when in why]
    assert len(found) == 1, f"README's exit-code table: {len(found)} rows for {command!r} / {when!r}"
    return int(found[0])


def condafix(*args: str, python: str = sys.executable, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [python, "-m", "condafix", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "NO_COLOR": "1", **env},
        stdin=subprocess.DEVNULL,
        timeout=120,
        check=False,
    )


def test_the_table_covers_both_front_ends_and_conda_doctor() -> None:
    commands = " ".join(cmd for cmd, _e, _w in table())
    assert "conda cuda" in commands and "conda doctor --fix cuda" in commands and "`conda doctor`" in commands


def test_no_such_env_exits_as_the_table_says(tmp_path: Path) -> None:
    done = condafix("doctor", "-n", "no-such-env-here", HOME=str(tmp_path))
    assert done.returncode == expected("any `condafix` command", "no such env") == 3, done.stderr


def test_env_check_that_would_change_exits_as_the_table_says(tmp_path: Path) -> None:
    env_file = tmp_path / "environment.yml"
    env_file.write_text("channels: [conda-forge]\ndependencies:\n  - cuda-version=12.9\n  - cuda-nvrtc\n")
    done = condafix("env", str(env_file), "--cuda", "12.4", "--offline", "--check")
    assert done.returncode == expected("`condafix env --check`", "would change") == 1, done.stderr


def test_condafix_cuda_in_condas_own_install_is_not_silently_planned(plugged: RealConda) -> None:  # noqa: F811
    own = str(Path(plugged.python).parent.parent)
    done = condafix("cuda", "--cuda", "12.4", python=plugged.python, CONDA_PREFIX=own)
    assert done.returncode == expected("any `condafix` command", "conda's own install") == 2, done.stderr
    assert own in done.stderr and "-n NAME or -p PATH" in done.stderr
    assert "nothing to do" not in done.stdout


@pytest.fixture(scope="module")
def broken(plugged: RealConda, tmp_path_factory: pytest.TempPathFactory) -> Path:  # noqa: F811
    """conda's own bug (cuda-version 12.9 for __cuda 12.4) in a real env, beside a condarc naming the channel."""
    where = tmp_path_factory.mktemp("exit")
    (where / "condarc").write_text(f"channels:\n  - {plugged.channel_url}\n")
    return plugged.create(where / "env", BROKEN_SPECS, solver="libmamba", cuda="12.4")


def condarc(prefix: Path) -> dict[str, str]:
    return {"CONDARC": str(prefix.parent / "condarc")}


def test_conda_doctor_report_exits_zero_whatever_it_found(plugged: RealConda, broken: Path) -> None:  # noqa: F811
    done = plugged.run("doctor", "cuda", "-p", str(broken), check=False)
    assert "mismatch" in done.stdout
    assert done.returncode == expected("`conda doctor`", "conda's own rule") == 0


@pytest.mark.parametrize(
    ("args", "row"),
    [
        (("doctor", "--fix", "cuda"), "`conda doctor --fix cuda`"),
        (("cuda", "--apply"), "`condafix cuda --apply`, `condafix rollback`"),
    ],
)
def test_a_change_without_a_terminal_or_yes_exits_non_zero(
    plugged: RealConda,  # noqa: F811
    broken: Path,
    args: tuple[str, ...],
    row: str,
) -> None:
    before = plugged.installed(broken)
    done = plugged.run(*args, "-p", str(broken), check=False, env=condarc(broken))  # stdin is /dev/null: no terminal
    assert done.returncode == expected(row, "no terminal") == 2, (done.stdout, done.stderr)
    assert "--yes" in done.stderr and "Traceback" not in done.stderr
    assert "cuda-version=12.4" in done.stdout  # the plan was shown, then nothing done
    assert plugged.installed(broken) == before


def test_conda_cuda_rollback_without_a_terminal_exits_non_zero(plugged: RealConda, broken: Path) -> None:  # noqa: F811
    applied = plugged.run("cuda", "-p", str(broken), "--apply", "--yes", check=False, env=condarc(broken))
    assert applied.returncode == 0, applied.stderr
    done = plugged.run("cuda", "--rollback", "-p", str(broken), check=False, env=condarc(broken))
    assert done.returncode == expected("`condafix cuda --apply`, `condafix rollback`", "no terminal") == 2
    assert "--yes" in done.stderr
    assert plugged.installed(broken)["cuda-version"] == "12.4"  # nothing was rolled back
    assert re.search(r"cuda-version", plugged.run("cuda", "--rollback", "--dry-run", "-p", str(broken)).stdout)
