"""doctor's start (issue 23): what it imports, how it reads its arguments, how it prints, its probe child.

No timing assertions: the tests pin the causes (typer, rich, a full interpreter for the probe child),
bench/ measures the times.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from condafix.cli import plain, start
from condafix.detect import driver

from .conftest import CUDA12_ENV, FIXTURES
from .test_driver import FAKE_PYNVML, fake_library_dir


def imported_by(*args: str, env: dict[str, str] | None = None) -> tuple[set[str], subprocess.CompletedProcess[str]]:
    """The modules ``python -m condafix ARGS`` imports (from -X importtime), and the run."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "condafix", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "NO_COLOR": "1", **(env or {})},
        timeout=120,
        check=False,
    )
    names = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}
    return names, done


@pytest.mark.parametrize("args", [("doctor", "--cuda", "12.4"), ("doctor", "--json"), ("-q", "doctor", "--check")])
def test_doctor_starts_without_typer_or_rich(make_prefix: Callable[..., Path], args: tuple[str, ...]) -> None:
    prefix = make_prefix(CUDA12_ENV)
    names, done = imported_by(*args, "-p", str(prefix))
    assert "Traceback" not in done.stderr and "status" in done.stdout
    heavy = sorted(n for n in names if n.split(".")[0] in ("typer", "click", "rich", "shutil", "subprocess"))
    assert heavy == [], heavy
    assert "importlib.resources" not in names  # the tables are read from the package directory


def test_other_commands_and_help_still_go_through_typer() -> None:
    names, done = imported_by("doctor", "--help")
    assert done.returncode == 0 and "--all-sources" in done.stdout and "typer" in names
    _names, bad = imported_by("doctor", "--bogus")
    assert bad.returncode == 2 and "No such option" in bad.stderr and "Traceback" not in bad.stderr
    _names, missing = imported_by("doctor", "-p")
    assert missing.returncode == 2 and "requires an argument" in missing.stderr


@pytest.mark.parametrize(
    ("argv", "parsed"),
    [
        (["doctor"], (False, {})),
        (["-q", "doctor", "--json"], (True, {"as_json": True})),
        (
            ["doctor", "-p", "/e", "--cuda=12.4", "--check", "--all-sources", "--probe"],
            (False, {"prefix": "/e", "cuda": "12.4", "check": True, "all_sources": True, "probe": True}),
        ),
        (["doctor", "-n", "a", "--name", "b", "--driver", "5.1"], (False, {"name": "b", "driver": "5.1"})),
        (["doctor", "--help"], None),
        (["doctor", "-p"], None),
        (["doctor", "-p", "--json"], None),  # typer decides what a value that looks like an option means
        (["doctor", "-pX"], None),
        (["doctor", "extra"], None),
        (["--no-proxy", "doctor"], None),
        (["cuda", "--cuda", "12.4"], None),
        ([], None),
    ],
)
def test_doctor_arguments_read_without_typer(argv: list[str], parsed: object) -> None:
    assert start.doctor_args(argv) == parsed


def test_the_fast_path_and_typer_give_the_same_document(make_prefix: Callable[..., Path]) -> None:
    prefix = make_prefix(CUDA12_ENV)
    fast = subprocess.run(
        [sys.executable, "-m", "condafix", "doctor", "--json", "--cuda", "12.4", "-p", str(prefix)],
        capture_output=True,
        text=True,
        check=False,
    )
    code = (
        "import sys; sys.argv = ['condafix', *sys.argv[1:]]\n"
        "from condafix.cli import app\n"
        "raise SystemExit(app._run_app())"
    )
    typed = subprocess.run(
        [sys.executable, "-c", code, "doctor", "--json", "--cuda", "12.4", "-p", str(prefix)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert fast.returncode == typed.returncode == 0
    assert json.loads(fast.stdout) == json.loads(typed.stdout)
    assert json.loads(fast.stdout)["result"]["status"] == "mismatch"


def test_an_error_is_one_line_on_the_fast_path() -> None:
    _names, done = imported_by("doctor", "-p", "/does/not/exist")
    assert done.returncode == 3 and "prefix does not exist" in done.stderr and "Traceback" not in done.stderr


# ---------------------------------------------------------------- the plain console


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_markup_off_a_terminal_is_the_bare_text() -> None:
    out = io.StringIO()
    plain.Console(out, env={}).print(f"[bold red]error:[/] {plain.escape('a [bold]b[/] c[1]')}")
    assert out.getvalue() == "error: a [bold]b[/] c[1]\n"


def test_markup_on_a_terminal_follows_rich_rules() -> None:
    coloured, no_colour, dumb = Tty(), Tty(), Tty()
    plain.Console(coloured, env={}).print("[bold red]x[/] y")
    plain.Console(no_colour, env={"NO_COLOR": "1"}).print("[bold red]x[/] y")
    plain.Console(dumb, env={"TERM": "dumb"}).print("[bold red]x[/] y")
    assert "\x1b[1;31mx" in coloured.getvalue()
    assert "\x1b[1mx" in no_colour.getvalue() and "31" not in no_colour.getvalue()
    assert dumb.getvalue() == "x y\n"
    forced = io.StringIO()
    plain.Console(forced, env={"FORCE_COLOR": "1"}).print("[green]ok[/]")
    assert "\x1b[32mok" in forced.getvalue()


def test_the_table_aligns_columns_and_never_wraps_off_a_terminal() -> None:
    out = io.StringIO()
    why = "word " * 60
    plain.Console(out, env={}).table(("a", "bb"), [("[green]long-cell[/]", why), ("x", "y")])
    lines = out.getvalue().splitlines()
    assert lines[0] == "a            bb"
    assert lines[1] == "long-cell    " + why and lines[2] == "x            y"


def test_doctor_text_is_redacted_and_escaped(make_prefix: Callable[..., Path], tmp_path: Path) -> None:
    prefix = make_prefix(CUDA12_ENV, name="env[bold]x")
    done = subprocess.run(
        [sys.executable, "-m", "condafix", "doctor", "--cuda", "12.4", "-p", str(prefix)],
        capture_output=True,
        text=True,
        env={**os.environ, "NO_COLOR": "1"},
        check=False,
    )
    assert f"{prefix} (conda, via -p" in done.stdout
    table = done.stdout.splitlines()[3:5]
    assert table[0].split() == ["component", "version", "from", "CUDA", "verdict", "why"]
    assert (
        table[1] == "cuda-cudart       12.9.79    conda    12.9    newer-than-driver    see below"
    )  # said once, below


# ---------------------------------------------------------------- the probe child


def test_the_probe_child_starts_bare_and_finds_pynvml_on_the_parents_path(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "pynvml.py").write_text(FAKE_PYNVML)
    monkeypatch.setattr(sys, "path", [str(site), *sys.path])  # not PYTHONPATH: the parent's own sys.path
    monkeypatch.delenv("PYTHONPATH", raising=False)
    monkeypatch.setenv("FAKE_NVML_JSON", str(FIXTURES / "smi" / "h100-580.159.04-nvml.json"))
    seen: list[list[str]] = []
    real = driver.runner.run

    def spy(argv: list[str], **kw: object) -> driver.runner.RunResult:
        seen.append(list(argv))
        return real(argv, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(driver.runner, "run", spy)
    info = driver.detect(env={"LD_LIBRARY_PATH": fake_library_dir(tmp_path, "libnvidia-ml.so.1")})
    assert (info.source, info.cuda) == ("nvml", "13.0")
    child = seen[0]
    assert child[1] == "-S" and child[2].endswith("_native_probe.py") and "-m" not in child


def test_the_plan_text_needs_no_rich(installed_env: Callable[..., Path], channel: Path) -> None:
    prefix = installed_env(["numba-cuda", "python 3.12.3.*", "numpy 2.0.0.*"], cuda="12.9")
    args = ("cuda", "-p", str(prefix), "-c", channel.as_uri(), "--cuda", "12.4", "--solver", "rattler")
    names, done = imported_by(*args)
    assert done.returncode == 0, done.stderr
    assert "downgrade    cuda-version" in done.stdout and "dry run: nothing was changed" in done.stdout
    assert not [n for n in names if n.split(".")[0] == "rich"]
