"""`condafix env`: golden diffs, untouched lines, idempotence, atomic writes, bad input, fuzzing."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from condafix.envfile import EnvFileError, plan_file
from condafix.errors import CondafixError
from condafix.knowledge import CudaVersion

from .conftest import FIXTURES

FILES = FIXTURES / "envfiles"
GOLDEN = FILES / "golden"
NAMES = sorted(p.name for p in FILES.glob("*.y*ml"))


def run(*args: str, cwd: Path | None = None, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "condafix", "env", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        input=stdin,
        env={**os.environ, "NO_COLOR": "1"},
        check=False,
    )


@pytest.mark.parametrize("target", ["12.4", "11.4"])
@pytest.mark.parametrize("name", NAMES)
def test_golden_diffs(name: str, target: str) -> None:
    raw = (FILES / name).read_bytes().decode()
    result, _new = plan_file(raw, name, CudaVersion.parse(target), offline=True)
    assert result.diff == (GOLDEN / f"{name}.cuda{target}.diff").read_bytes().decode()
    assert result.changed == bool(result.diff)


@pytest.mark.parametrize("name", NAMES)
def test_only_the_pinned_lines_change_and_rerun_is_idempotent(name: str) -> None:
    raw = (FILES / name).read_bytes().decode()
    result, new = plan_file(raw, name, CudaVersion.parse("12.4"), offline=True)
    old_lines, new_lines = raw.splitlines(keepends=True), new.splitlines(keepends=True)
    touched = {e.line for e in result.edits}
    inserted = [e.line for e in result.edits if not e.old]
    for line in sorted(inserted):
        del new_lines[line - 1]
    assert len(old_lines) == len(new_lines)
    for number, (before, after) in enumerate(zip(old_lines, new_lines, strict=True), 1):
        if number not in touched:
            assert before == after
        else:
            assert before.split("#", 1)[1:] == after.split("#", 1)[1:]  # the comment on an edited line stays
    again, same = plan_file(new, name, CudaVersion.parse("12.4"), offline=True)
    assert not again.changed and same == new


def test_line_endings_and_bom_are_kept() -> None:
    crlf = (FILES / "windows-crlf.yml").read_bytes().decode()
    _, new = plan_file(crlf, "w.yml", CudaVersion.parse("12.4"), offline=True)
    assert new.count("\r\n") == crlf.count("\r\n") and "\n" not in new.replace("\r\n", "")
    bom = (FILES / "bom.yml").read_bytes().decode()
    _, new = plan_file(bom, "b.yml", CudaVersion.parse("11.4"), offline=True)
    assert new.startswith("\ufeff") and "cudatoolkit=11.4" in new


def test_styles_are_kept() -> None:
    text = "dependencies:\n  - cuda-version>=12.0,<13\n  - numba-cuda\n"
    _, new = plan_file(text, "x.yml", CudaVersion.parse("12.6"), offline=True)
    assert "cuda-version>=12.0,<12.7\n" in new  # exclusive upper bound style, no 12.7 pinned
    _, new = plan_file("dependencies:\n  - cuda-version\n", "x.yml", CudaVersion.parse("12.7"), offline=True)
    assert "cuda-version=12.6\n" in new  # 12.7 does not exist


def test_already_compatible_pin_is_not_moved_up() -> None:
    text = "dependencies:\n  - cuda-version=12.2\n  - numba-cuda\n"
    result, new = plan_file(text, "x.yml", CudaVersion.parse("12.8"), offline=True)
    assert not result.changed and new == text


def test_pytorch_cuda_and_pip_cudatoolkit_are_reported_not_changed() -> None:
    text = (
        "dependencies:\n  - pytorch-cuda=12.1\n  - pip:\n    - cudatoolkit==11.8\n"
        "    - nvidia-cuda-runtime-cu12==12.1.105\n"
    )
    result, new = plan_file(text, "t.yml", CudaVersion.parse("11.8"), offline=True)
    assert new == text and not result.changed
    messages = " | ".join(n.message for n in result.notes)
    assert "pytorch-cuda=11.8" in messages and "reported, not changed" in messages


def test_file_without_cuda_changes_nothing() -> None:
    result, _new = plan_file((FILES / "cpu-only.yml").read_text(), "c.yml", CudaVersion.parse("12.4"), offline=True)
    assert not result.changed and "no CUDA package" in result.notes[0].message


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("name: x\ndependencies: [a, b\n", "x.yml:3:1: invalid YAML"),
        ("- just\n- a list\n", "not an environment file"),
        ("name: x\ndependencies:\n  python: 3\n", "x.yml:3:3: `dependencies` is not a list"),
        ("name: x\n\tdependencies: []\n", "x.yml:2:1: invalid YAML"),
    ],
)
def test_bad_files_give_one_line_with_position(text: str, needle: str) -> None:
    with pytest.raises(EnvFileError, match=needle.replace("[", r"\[")):
        plan_file(text, "x.yml", CudaVersion.parse("12.4"), offline=True)


def test_cli_write_check_and_backup(tmp_path: Path) -> None:
    target = tmp_path / "environment.yml"
    original = (FILES / "numba-cuda-exact.yml").read_bytes()
    target.write_bytes(original)
    target.chmod(0o640)
    assert run("--cuda", "12.4", "--offline", "--check", cwd=tmp_path).returncode == 1
    assert target.read_bytes() == original  # --check alone never writes
    done = run("--cuda", "12.4", "--offline", "--write", cwd=tmp_path)
    assert done.returncode == 0 and "wrote environment.yml" in done.stdout
    assert (tmp_path / "environment.yml.bak").read_bytes() == original
    assert b"cuda-version==12.4" in target.read_bytes()
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".environment.yml.")]  # no temp file left
    assert run("--cuda", "12.4", "--offline", "--check", cwd=tmp_path).returncode == 0


def test_cli_bad_yaml_exit_2_and_file_untouched(tmp_path: Path) -> None:
    bad = tmp_path / "environment.yaml"
    bad.write_text("dependencies: [\n")
    done = run("--cuda", "12.4", "--offline", "--write", cwd=tmp_path)
    assert done.returncode == 2 and "environment.yaml:2:1: invalid YAML" in done.stderr
    assert "Traceback" not in done.stderr and bad.read_text() == "dependencies: [\n"
    assert not (tmp_path / "environment.yaml.bak").exists()


def test_cli_stdin_to_stdout() -> None:
    text = (FILES / "rapids-cuda-version.yaml").read_text()
    done = run("-", "--cuda", "12.4", "--offline", "--write", stdin=text)
    assert done.returncode == 0 and done.stdout == text.replace("<=12.9", "<=12.4")


def test_pin_is_checked_on_the_channel(channel: Path, tmp_path: Path) -> None:
    text = "channels: [conda-forge]\ndependencies:\n  - python 3.12.*\n  - numba-cuda\n  - cuda-version=12.9\n"
    result, new = plan_file(text, "e.yml", CudaVersion.parse("12.7"), channels=[channel.as_uri()])
    assert result.pin == "cuda-version=12.6" and "solve" in result.checked and "cuda-version=12.6" in new
    blocked = text + "  - pytorch\n"
    with pytest.raises(CondafixError, match=r"no cuda-version <= 12\.4"):
        plan_file(blocked, "e.yml", CudaVersion.parse("12.4"), channels=[channel.as_uri()])


yaml_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
dep_specs = st.lists(
    st.sampled_from(["cuda-version", "cudatoolkit", "numba-cuda", "cupy", "pytorch-cuda", "python"]).flatmap(
        lambda n: st.sampled_from(
            [n, f"{n}=12.9", f"{n}>=11,<13", f"{n} 12.*", f"{n}==11.2", f"conda-forge::{n}", f"{n}=x.y"]
        )
    ),
    max_size=6,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=yaml_values, deps=dep_specs, noise=st.text(max_size=40))
def test_fuzzed_documents_never_crash(doc: object, deps: list[str], noise: str) -> None:
    for text in (yaml.safe_dump(doc), yaml.safe_dump({"name": "f", "dependencies": deps}), noise):
        try:
            result, new = plan_file(text, "f.yml", CudaVersion.parse("12.4"), offline=True)
        except CondafixError:
            continue
        again, _ = plan_file(new, "f.yml", CudaVersion.parse("12.4"), offline=True)
        assert not again.changed or not result.changed
