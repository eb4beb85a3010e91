"""``--help`` in both front ends, and usage errors (issue 24): every ``condafix`` command through typer's
CliRunner, ``conda cuda`` through argparse directly and through the real conda.

A help page fails on: a summary cut off, an option without help text, a metavar that says nothing
(``<str>``, ``TEXT``, argparse's ``DRIVERS_FILE``), a closed option without its words, no exit codes.
The closed options' words are written out here, not read from the code.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from condafix.cli import app as app_mod
from condafix.cli import conda_cuda, helptext

from .realconda import RealConda, real_conda  # noqa: F401  (fixture)
from .test_conda_plugin import plugged  # noqa: F401  (fixture)

README = Path(__file__).resolve().parent.parent / "README.md"
COMMANDS = ("doctor", "explain", "cuda", "rollback", "env", "lock", "proxy")
CLOSED = {
    "--solver": ("auto", "conda", "libmamba", "classic", "rattler"),
    "--via": ("conda", "mamba", "micromamba"),
}
CONDA_CLOSED = {"--solver": ("conda", "libmamba", "classic", "rattler"), "--via": ("conda", "mamba", "micromamba")}
VAGUE = re.compile(r"<\w+>|\bTEXT\b|\bINTEGER\b|\bDRIVERS_FILE\b|--to TO\b|--cuda CUDA\b|--driver DRIVER\b")


def help_of(*args: str) -> str:
    done = CliRunner().invoke(app_mod.app, [*args, "--help"], prog_name="condafix", env={"COLUMNS": "100"})
    assert done.exit_code == 0, done.output
    return done.output


def option_blocks(text: str) -> dict[str, str]:
    """Each option's help entry (its line and the indented lines under it), by every flag it names."""
    blocks: dict[str, str] = {}
    section = text.split("Options:", 1)[1].split("Exit codes:", 1)[0]
    entries = re.split(r"\n(?=  -)", "\n" + section)
    for entry in entries:
        flags = re.findall(r"(?<![\w-])(--?[a-z][\w-]*)", entry.strip().split("  ", 1)[0])
        for flag in flags:
            blocks.setdefault(flag, " ".join(entry.split()))
    return blocks


@pytest.mark.parametrize("command", COMMANDS)
def test_every_typer_command_help_is_complete(command: str) -> None:
    text = help_of(command)
    assert f"{helptext.TITLE}:" in text and "\n    0 " in text  # the table, with exit 0 first
    assert not VAGUE.search(text), VAGUE.search(text)
    click_command = typer.main.get_command(app_mod.app).commands[command]  # type: ignore[attr-defined]
    blocks = option_blocks(text)
    for param in click_command.params:
        if param.name == "help":
            continue
        assert (getattr(param, "help", None) or "").strip(), f"{command}: {param.name} has no help text"
        for flag in getattr(param, "opts", []):
            if flag.startswith("-"):
                entry = blocks[flag]
                described = entry.split(flag, 1)[1].split()
                assert len(described) > 1, f"{command} {flag}: {entry!r}"
    for flag, words in CLOSED.items():
        if flag in blocks:
            missing = [w for w in words if not re.search(rf"\b{w}\b", blocks[flag])]
            assert not missing, f"{command} {flag} does not list {missing}: {blocks[flag]}"


def test_the_command_list_shows_every_summary_whole() -> None:
    text = help_of()
    listing = text.split("Commands:", 1)[1].split("Exit codes:", 1)[0]
    assert "..." not in listing
    summaries = dict(re.findall(r"^  (\w+)\s+(.+?)(?=\n  \w|\n\n|\Z)", listing, flags=re.M | re.S))
    assert set(summaries) == set(COMMANDS)
    for command, summary in summaries.items():
        own = help_of(command).split("\n\n", 2)[1]  # the paragraph under Usage: the command's own help
        assert " ".join(summary.split()) == " ".join(own.split()), command
    assert f"{helptext.TITLE}:" in text


def test_readme_exit_codes_table_is_the_one_in_code() -> None:
    readme = README.read_text(encoding="utf-8")
    section = readme[readme.index("### Exit codes") :]
    section = section[: section.index("\n## ")]
    table = "\n".join(line for line in section.splitlines() if line.startswith("|")) + "\n"
    assert table == helptext.markdown_table(), "regenerate README's table from condafix/cli/helptext.py"


def test_every_exit_code_row_is_in_some_help() -> None:
    shown = {r for c in ("", *COMMANDS, "conda cuda") for r in helptext.rows_for(c)}
    assert {r for r in helptext.EXIT_CODES if not r.command.startswith("`conda doctor")} <= shown
    for command in ("rollback", "conda cuda"):
        assert "4" in {r.exit for r in helptext.rows_for(command)}, command


def conda_cuda_parser() -> argparse.ArgumentParser:
    """``conda cuda``'s parser as conda makes it: its own ArgumentParser keeps an epilog's lines."""
    parser = argparse.ArgumentParser(prog="conda cuda", formatter_class=argparse.RawDescriptionHelpFormatter)
    conda_cuda.configure_cuda_parser(parser)
    return parser


def check_conda_cuda_help(text: str) -> None:
    assert f"{helptext.TITLE}:" in text and re.search(r"\n  4 +condafix cuda --apply", text)
    assert not VAGUE.search(text), VAGUE.search(text)
    for flag, words in CONDA_CLOSED.items():
        assert "{" + ",".join(words) + "}" in text, flag


def test_conda_cuda_help_through_argparse() -> None:
    parser = conda_cuda_parser()
    for action in parser._actions:
        assert action.help and action.help != argparse.SUPPRESS, action.option_strings
        if action.nargs != 0 and action.option_strings:
            assert action.metavar or action.choices, f"{action.option_strings}: argparse's default metavar"
    check_conda_cuda_help(parser.format_help())


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--bogus"], "unrecognized arguments: --bogus"),
        (["--via", "foo"], "invalid choice: 'foo'"),
        (["--to"], "expected one argument"),
        (["-n", "a", "-p", "b"], "not allowed with argument"),
    ],
)
def test_conda_cuda_usage_error_is_one_line(args: list[str], says: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        conda_cuda_parser().parse_args(args)
    assert exited.value.code == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2 and says in lines[0] and lines[1] == "try `conda cuda --help`", lines


def test_conda_cuda_help_through_real_conda(plugged: RealConda) -> None:  # noqa: F811
    text = plugged.run("cuda", "--help").stdout
    check_conda_cuda_help(text)
    summary = text.split("\n\n", 2)[1]  # the plugin's summary, as conda shows it under the usage
    listing = " ".join(plugged.run("--help").stdout.split())
    assert f"cuda {' '.join(summary.split())}" in listing


@pytest.mark.parametrize("args", [("--bogus",), ("--solver", "nope"), ("--to",)])
def test_conda_cuda_usage_errors_through_real_conda(plugged: RealConda, args: tuple[str, ...]) -> None:  # noqa: F811
    done = plugged.run("cuda", *args, check=False)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 2 and lines[1].startswith("try `conda cuda --help`"), done.stderr
    assert "usage:" not in done.stderr


def test_conda_cuda_no_such_env_is_one_line_exit_3(plugged: RealConda, tmp_path: Path) -> None:  # noqa: F811
    (tmp_path / "envs" / "gpu-env" / "conda-meta").mkdir(parents=True)
    done = plugged.run("cuda", "-n", "gpu-evn", check=False, env={"CONDA_ENVS_PATH": str(tmp_path / "envs")})
    assert done.returncode == 3, done.stderr  # conda's own EnvironmentNameNotFound exits 1, in three lines
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "no environment named 'gpu-evn'" in lines[0] and "'gpu-env'" in lines[0], lines
    assert str(tmp_path / "envs") in lines[0]


def condafix(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "condafix", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "NO_COLOR": "1"},
        stdin=subprocess.DEVNULL,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("cuda", "--bogus"), "No such option: --bogus"),
        (("doctor", "--bogus"), "No such option: --bogus"),  # doctor's own reader hands it to typer
        (("bogus",), "No such command 'bogus'"),
        (("explain", "one", "two"), "unexpected extra argument"),
        (("rollback", "--to"), "requires an argument"),
        (("cuda", "--solver", "nope"), "--solver must be one of"),
        (("cuda", "--via", "nope"), "--via must be one of"),
    ],
)
def test_typer_usage_error_is_one_line(args: tuple[str, ...], says: str) -> None:
    done = condafix(*args)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and says in lines[0] and lines[0].startswith("error: "), done.stderr
    assert len(lines) == 1 or (len(lines) == 2 and lines[1].startswith("try `") and lines[1].endswith(" --help`"))
    assert "Usage:" not in done.stderr and "Traceback" not in done.stderr


def test_no_arguments_still_print_the_help() -> None:
    done = condafix()
    assert "Commands:" in done.stdout + done.stderr and "error:" not in done.stderr
