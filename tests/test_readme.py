"""The README's console examples are what condafix prints: each block marked ``<!-- readme-test -->`` is run.

The marker sits on the line before a ```` ```console ```` block; ``cwd=DIR`` runs it in that folder of the demo
(``tests/demo.py``, built once here in a temp dir that stands for the README's ``/tmp/demo``), and ``machine``
marks output that holds for this repository's CI machine only (no NVIDIA driver, a system CUDA 13.0 toolkit
at ``/usr/local/cuda``): elsewhere that block skips. Each ``$ `` line runs in bash with the demo's exports and a
clean environment (no proxy, conda or venv settings of the developer's shell); its stdout must equal the lines
that follow it in the README, after the demo's path is written as ``/tmp/demo``, snapshot ids as ``SNAPSHOT`` and
the gaps between columns as two spaces (a table laid out for the temp dir's longer path is the same table).
Progress goes to stderr and is not compared.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from .demo import build, exports

ROOT = Path(__file__).resolve().parent.parent
MARKER = re.compile(r"^<!-- readme-test(?P<args>[^>]*)-->\n```console\n(?P<body>.*?)^```$", re.M | re.S)
SNAPSHOT = re.compile(r"\b\d{8}T\d{6}\.\d{6}Z\b")
GAP = re.compile(r"(?<=\S) {2,}(?=\S)")  # column gaps: a table padded for a longer path is the same table


@dataclass(frozen=True, kw_only=True)
class Step:
    command: str
    expected: str


@dataclass(frozen=True, kw_only=True)
class Block:
    line: int
    cwd: str
    machine: bool
    steps: tuple[Step, ...]


def blocks(text: str) -> list[Block]:
    """The marked console blocks of ``text``: each ``$ `` line with the output lines under it."""
    found = []
    for match in MARKER.finditer(text):
        args = match.group("args").split()
        cwd = next((a.split("=", 1)[1] for a in args if a.startswith("cwd=")), ".")
        steps: list[Step] = []
        for raw in match.group("body").splitlines():
            if raw.startswith("$ "):
                steps.append(Step(command=raw[2:], expected=""))
            elif steps:
                last = steps[-1]
                steps[-1] = Step(command=last.command, expected=last.expected + raw + "\n")
        found.append(
            Block(
                line=text[: match.start()].count("\n") + 1,
                cwd=cwd,
                machine="machine" in args,
                steps=tuple(steps),
            )
        )
    return found


def normalise(text: str, demo: Path) -> str:
    """The demo's path as the README's ``/tmp/demo``, snapshot ids as ``SNAPSHOT``, column gaps as two spaces."""
    return GAP.sub("  ", SNAPSHOT.sub("SNAPSHOT", text.replace(str(demo), "/tmp/demo")))


def shell_env(demo: Path) -> dict[str, str]:
    """What a new user's shell holds after the demo's exports: nothing of the developer's own settings."""
    bindir = str(Path(sys.executable).parent)
    home = demo / "home"  # no ~/.condarc of the developer's
    home.mkdir(exist_ok=True)
    keep = {k: v for k, v in os.environ.items() if k in ("LANG", "LC_ALL", "TMPDIR")}
    base = {"HOME": str(home), "PATH": f"{bindir}:/usr/bin:/bin", "NO_COLOR": "1", "COLUMNS": "200"}
    return {**keep, **base, **exports(demo)}


def run_block(block: Block, demo: Path) -> list[str]:
    """Run every step; the differences as one message per step that disagrees (empty: the README is right)."""
    problems = []
    for step in block.steps:
        command = step.command.replace("/tmp/demo", str(demo))
        done = subprocess.run(
            ["bash", "-c", command],
            cwd=demo / block.cwd,
            env=shell_env(demo),
            capture_output=True,
            text=True,
            timeout=300,
        )
        got = normalise(done.stdout, demo)
        want = normalise(step.expected, demo)
        if got != want:
            problems.append(
                f"README line {block.line}: `$ {step.command}` printed\n{got}--- the README shows\n{want}"
                f"--- stderr\n{done.stderr[-1500:]}"
            )
    return problems


def ci_machine() -> bool:
    """The machine the ``machine`` blocks describe: no NVIDIA driver, a system CUDA 13.0 toolkit."""
    header = Path("/usr/local/cuda/include/cuda.h")
    no_driver = shutil.which("nvidia-smi") is None and not any(
        Path(d, "libcuda.so.1").exists() for d in ("/usr/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/lib/wsl/lib")
    )
    return no_driver and header.exists() and "#define CUDA_VERSION 13000" in header.read_text(errors="replace")


README_BLOCKS = blocks((ROOT / "README.md").read_text())


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("demo")
    build(root)
    return root


def test_the_readme_marks_its_examples() -> None:
    """Each example family is marked: a marker lost in an edit would silently stop the comparison."""
    commands = [step.command for block in README_BLOCKS for step in block.steps]
    for start in ("condafix doctor", "condafix explain", "condafix cuda", "condafix rollback", "condafix env"):
        assert any(c.startswith(start) for c in commands), start
    assert any("condafix lock" in c for c in commands) and any("condafix proxy" in c for c in commands)


@pytest.mark.parametrize("block", README_BLOCKS, ids=[f"line{b.line}" for b in README_BLOCKS])
def test_readme_block_prints_what_the_readme_shows(block: Block, demo: Path) -> None:
    if block.machine and not ci_machine():
        pytest.skip("this block's output is the CI machine's (no NVIDIA driver, system CUDA 13.0)")
    problems = run_block(block, demo)
    assert not problems, "\n\n".join(problems)


def test_a_block_that_disagrees_fails(demo: Path) -> None:
    """The comparison is real: one changed output line of a marked block is reported, the line named."""
    block = next(b for b in README_BLOCKS if any(s.command.startswith("condafix cuda -n gpu") for s in b.steps))
    first = block.steps[0]
    changed = first.expected.replace("547 B", "548 B", 1)
    assert changed != first.expected
    altered = Block(
        line=block.line, cwd=block.cwd, machine=False, steps=(Step(command=first.command, expected=changed),)
    )
    problems = run_block(altered, demo)
    assert len(problems) == 1 and f"README line {block.line}" in problems[0] and "548 B" in problems[0]


def test_blocks_reads_commands_outputs_and_options() -> None:
    text = (
        "intro\n<!-- readme-test cwd=files/lock machine -->\n```console\n$ echo a\na\nb\n$ true\n```\n"
        "```console\n$ not marked\n```\n"
    )
    (block,) = blocks(text)
    assert block == Block(
        line=2,
        cwd="files/lock",
        machine=True,
        steps=(Step(command="echo a", expected="a\nb\n"), Step(command="true", expected="")),
    )
