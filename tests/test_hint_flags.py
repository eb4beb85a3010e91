"""Every flag a hint names is accepted by the command that prints it (both front ends).

The hints are collected from the source (every ``Hint(text=...)`` and every flag-naming string in
``cli/``); the accepted flags are parsed from the commands' own ``--help`` (``conda cuda --help`` from
real conda, skipped without it). A flag inside a backtick span belongs to the command the span names
(`` `condafix env --write` ``); a bare flag belongs to the commands that can print that module's hints
(``PRINTED_BY``: a new module with flag hints must be added there, or this fails).
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "condafix"
#: a flag and the word after it (checked as its value only where the option has choices)
FLAG = re.compile(r"(?<![\w-])(--[a-z][a-z-]*)(?:[ =]([a-z]+)(?![\w.-]))?")
SPAN = re.compile(r"`([^`]*)`")
COMMAND = re.compile(r"^(condafix|conda)(?: ([a-z]+))?")
MENTION = re.compile(r"\b(?:condafix (?:cuda|rollback|env|lock|doctor|explain|proxy)|conda (?:cuda|doctor))\b")
CONDA_PYTHON = os.environ.get("CONDAFIX_TEST_CONDA_PYTHON", "")

CHANGERS = ("condafix cuda", "conda cuda")
PLANNERS = ("condafix cuda", "condafix env", "conda cuda")
#: module (or module:function) -> the commands that can print its hints.
PRINTED_BY: dict[str, tuple[str, ...]] = {
    "backends/choice.py": PLANNERS,
    "backends/rattler/net.py": PLANNERS,
    "change/condafiles.py": CHANGERS,
    "change/rollback.py": ("condafix rollback", "conda cuda"),
    "cli/app.py:_ui": ("condafix cuda", "condafix rollback"),
    "cli/app.py:confirm": ("condafix cuda", "condafix rollback"),
    "cli/app.py:_solver": ("condafix cuda", "condafix env"),
    "cli/app.py:env_file": ("condafix env",),
    "cli/app.py:_say_dropped_proxies": ("condafix",),
    "cli/app.py:usage_error": ("condafix",),  # "try `condafix cuda --help`" after a usage error
    "cli/conda_cuda.py:_one_line_errors": ("conda cuda",),  # "try `conda cuda --help`"
    "cli/conda_cuda.py:error": ("conda cuda",),  # (its inner function)
    "cli/guard.py": ("condafix",),  # the broken-proxy note both entry paths print
    "cli/conda_cuda.py:_needs_terminal": ("conda cuda", "conda doctor"),
    "cli/commands.py": ("condafix cuda", "condafix rollback", "conda cuda"),
    "cli/render.py:plan_text": ("condafix cuda", "conda cuda"),
    "cli/render.py:applied_text": CHANGERS,
    "cli/render.py:envfile_text": ("condafix env",),
    "cli/render.py:proxy_text": ("condafix proxy",),
    "detect/target.py": (*PLANNERS, "condafix lock"),
    "diagnose/verdict.py": ("condafix doctor",),
}


def _text(node: ast.AST) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else "X" for v in node.values)
    if isinstance(node, ast.BinOp):
        left, right = _text(node.left), _text(node.right)
        return None if left is None or right is None else left + right
    return None


def _declarations(tree: ast.AST) -> set[int]:
    """Strings that declare options (``typer.Option``/``add_argument`` arguments): not hints."""
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                skip.add(id(first.value))  # a docstring
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") in ("Option", "add_argument"):
            for sub in ast.walk(node):
                skip.add(id(sub))
    return skip


#: modules whose strings are option tables, not hints: the console script reads doctor's flat options
#: without typer (tests/test_startup.py keeps it equal to typer's declarations); the exit-code table
#: names the flags each row is about (tests/test_exit_codes.py runs those rows)
OPTION_TABLES = ("cli/start.py", "cli/helptext.py")


def hints() -> list[tuple[str, str]]:
    """(module or module:function, text) of every hint text that names a flag."""
    found: list[tuple[str, str]] = []
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if rel in OPTION_TABLES:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        skip = _declarations(tree)
        for func in [tree, *(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef))]:
            where = rel if func is tree else f"{rel}:{func.name}"  # type: ignore[attr-defined]
            body = func.body  # type: ignore[attr-defined]
            for stmt in body:
                for node in ast.walk(stmt):
                    if isinstance(node, ast.FunctionDef) and func is tree:
                        break
                    text = None
                    if id(node) in skip:
                        continue
                    if (
                        isinstance(node, ast.Call)
                        and getattr(node.func, "id", getattr(node.func, "attr", "")) == "Hint"
                    ):
                        text = next((_text(k.value) for k in node.keywords if k.arg == "text"), None)
                    elif rel.startswith("cli/") and isinstance(node, (ast.Constant, ast.JoinedStr, ast.BinOp)):
                        text = _text(node)
                    if text and FLAG.search(text) and (where, text) not in found:
                        found.append((where, text))
    return found


def owners(where: str, text: str) -> list[tuple[str, tuple[str, str]]]:
    """(command, flag) pairs a hint asks for; other tools' flags (`conda list --revisions`) are skipped."""
    pairs: list[tuple[str, tuple[str, str]]] = []
    bare = text
    for span in SPAN.findall(text):
        bare = bare.replace(f"`{span}`", " " if COMMAND.match(span) else span)
        named = COMMAND.match(span)
        if not named:
            continue
        command = named.group(0)
        if named.group(1) == "conda" and named.group(2) not in ("cuda", "doctor"):
            continue  # conda's own commands: not ours to check
        pairs += [(command, flag) for flag in FLAG.findall(span)]
    flags: list[tuple[str, str]] = []
    for clause in bare.split(";"):
        named = MENTION.search(clause)  # "condafix doctor -p ENV --driver X": that command's flags
        if named is None:
            flags += FLAG.findall(clause)
            continue
        flags += FLAG.findall(clause[: named.start()])
        pairs += [(named.group(0), flag) for flag in FLAG.findall(clause[named.end() :])]
    if flags:
        key = where if where in PRINTED_BY else where.split(":")[0]
        assert key in PRINTED_BY, f"{where} prints {flags} ({text!r}): add it to PRINTED_BY"
        pairs += [(command, flag) for command in PRINTED_BY[key] for flag in flags]
    return pairs


def _help(command: str) -> str:
    words = command.split()[1:]
    if command.startswith("conda "):
        if not CONDA_PYTHON:
            pytest.skip("real conda not installed (set CONDAFIX_TEST_CONDA_PYTHON)")
        argv = [CONDA_PYTHON, "-m", "conda", *words, "--help"]
    else:
        argv = [sys.executable, "-m", "condafix", *words, "--help"]
    done = subprocess.run(argv, capture_output=True, text=True, check=False, env={**os.environ, "COLUMNS": "200"})
    assert done.returncode == 0, done.stderr
    return done.stdout


@cache
def accepted(command: str) -> dict[str, frozenset[str] | None]:
    """Option -> its choices (None: any value) from the option column of ``--help``."""
    options: dict[str, frozenset[str] | None] = {}
    for line in _help(command).splitlines():
        if not re.match(r"^\s{1,6}-", line):
            continue
        column = re.split(r"\s{2,}", line.strip())[0]
        for name, choices in re.findall(r"(--[a-z][a-z-]*)(?:[ =]\{([^}]*)\})?", column):
            options[name] = frozenset(choices.split(",")) if choices else None
    assert options, f"no options parsed from `{command} --help`"
    return options


def test_the_collector_finds_the_hints_that_name_flags() -> None:
    texts = [text for _where, text in hints()]
    assert any("pass --force" in t for t in texts) and any("pass --replace-pin" in t for t in texts)
    assert any("--solver conda" in t for t in texts) and any("`--drivers-file" in t for t in texts)
    assert ("conda cuda", ("--force", "to")) in owners("change/rollback.py", "pass --force to roll back anyway")
    assert owners("x.py", "then `conda install --revision N`") == []


def test_every_flag_a_hint_names_is_accepted_by_the_command_that_prints_it() -> None:
    rejected = []
    for where, text in hints():
        for command, (name, value) in owners(where, text):
            options = accepted(command)
            if name not in options:
                rejected.append(f"{command} rejects {name} (hint in {where}: {text!r})")
            elif value and options[name] is not None and value not in options[name]:  # type: ignore[operator]
                rejected.append(f"{command} rejects {name} {value} (hint in {where}: {text!r})")
    assert not rejected, "\n".join(rejected)


@pytest.mark.parametrize("flag", ["--force", "--no-pin", "--replace-pin", "--list", "--to", "--dry-run", "--yes"])
def test_conda_cuda_takes_condafixs_cuda_and_rollback_options(flag: str) -> None:
    condafix = {*accepted("condafix cuda"), *accepted("condafix rollback")}
    assert flag in condafix and flag in accepted("conda cuda")


def test_both_front_ends_take_the_same_solver_words() -> None:
    assert accepted("conda cuda")["--solver"] == {"conda", "libmamba", "classic", "rattler"}
    help_text = _help("condafix cuda")
    assert all(word in help_text for word in ("conda", "rattler", "libmamba", "classic"))
