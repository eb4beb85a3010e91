"""`condafix env`: golden diffs, untouched lines, idempotence, atomic writes, bad input, fuzzing."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from condafix.backends.choice import open_backend
from condafix.errors import CondafixError
from condafix.files.envfile import EnvFileError, plan_file
from condafix.knowledge.cuda import CudaVersion
from condafix.plan.solver import Backend

from .conftest import FIXTURES

FILES = FIXTURES / "envfiles"
GOLDEN = FILES / "golden"
NAMES = sorted(p.name for p in FILES.glob("*.y*ml"))


def rattler() -> Backend:
    """The embedded solver without a prefix, as ``condafix env`` opens it outside conda."""
    return open_backend("rattler", prefix=None, offline=False)


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
    result, _new = plan_file(raw, name, CudaVersion.parse(target))
    golden = (GOLDEN / f"{name}.cuda{target}.diff").read_bytes().decode()
    status = (GOLDEN / f"{name}.cuda{target}.status").read_text()
    assert result.diff == golden
    assert result.changed == bool(result.diff)
    assert f"{result.status}: {result.reason}\n" == status


@pytest.mark.parametrize("name", NAMES)
def test_only_the_pinned_lines_change_and_rerun_is_idempotent(name: str) -> None:
    raw = (FILES / name).read_bytes().decode()
    result, new = plan_file(raw, name, CudaVersion.parse("12.4"))
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
    again, same = plan_file(new, name, CudaVersion.parse("12.4"))
    assert not again.changed and same == new


def test_line_endings_and_bom_are_kept() -> None:
    crlf = (FILES / "windows-crlf.yml").read_bytes().decode()
    _, new = plan_file(crlf, "w.yml", CudaVersion.parse("12.4"))
    assert new.count("\r\n") == crlf.count("\r\n") and "\n" not in new.replace("\r\n", "")
    bom = (FILES / "bom.yml").read_bytes().decode()
    _, new = plan_file(bom, "b.yml", CudaVersion.parse("11.4"))
    assert new.startswith("\ufeff") and "cudatoolkit=11.4" in new


def test_styles_are_kept() -> None:
    text = "dependencies:\n  - cuda-version>=12.0,<13\n  - numba-cuda\n"
    _, new = plan_file(text, "x.yml", CudaVersion.parse("12.6"))
    assert "cuda-version>=12.0,<12.7\n" in new  # exclusive upper bound style, no 12.7 pinned
    _, new = plan_file("dependencies:\n  - cuda-version\n", "x.yml", CudaVersion.parse("12.7"))
    assert "cuda-version=12.6\n" in new  # 12.7 does not exist


def test_already_compatible_pin_is_not_moved_up() -> None:
    text = "dependencies:\n  - cuda-version=12.2\n  - numba-cuda\n"
    result, new = plan_file(text, "x.yml", CudaVersion.parse("12.8"))
    assert not result.changed and new == text


def test_pytorch_cuda_crossing_a_major_is_refused_and_pip_is_reported() -> None:
    text = (
        "dependencies:\n  - pytorch-cuda=12.1\n  - pip:\n    - cudatoolkit==11.8\n"
        "    - nvidia-cuda-runtime-cu12==12.1.105\n"
    )
    result, new = plan_file(text, "t.yml", CudaVersion.parse("11.8"))
    assert new == text and not result.changed and result.status == "refused"
    assert "crosses a major" in result.reason and "--allow-major" in result.reason
    assert [n.line for n in result.notes] == [4, 5] and all("reported, not changed" in n.message for n in result.notes)
    moved, new = plan_file(text, "t.yml", CudaVersion.parse("11.8"), allow_major=True)
    assert moved.status == "change" and "pytorch-cuda=11.8" in new and "cudatoolkit==11.8" in new


def test_file_without_cuda_changes_nothing() -> None:
    result, _new = plan_file((FILES / "cpu-only.yml").read_text(), "c.yml", CudaVersion.parse("12.4"))
    assert not result.changed and result.status == "ok" and "no CUDA package" in result.reason


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("name: x\ndependencies: [a, b\n", "x.yml:3:1: invalid YAML"),
        ("- just\n- a list\n", "not an environment file"),
        ("name: x\ndependencies:\n  python: 3\n", "x.yml:3:3: `dependencies` is not a list"),
        ("name: x\n\tdependencies: []\n", "x.yml:2:1: invalid YAML"),
        # issue 22: a tagged node was an internal error (TypeError from the node's missing positions)
        ("dependencies: !!python/object:os.system [echo]\n", "YAML tag !!python/object:os.system"),
        ("dependencies:\n  - !!python/name:os.system x\n", "YAML tag !!python/name:os.system"),
    ],
)
def test_bad_files_give_one_line_with_position(text: str, needle: str) -> None:
    with pytest.raises(EnvFileError, match=needle.replace("[", r"\[")):
        plan_file(text, "x.yml", CudaVersion.parse("12.4"))


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
    result, new = plan_file(text, "e.yml", CudaVersion.parse("12.7"), channels=[channel.as_uri()], backend=rattler())
    assert result.pin == "cuda-version=12.6" and "solve" in result.checked and "cuda-version=12.6" in new
    blocked = text + "  - pytorch\n"
    refused, same = plan_file(
        blocked, "e.yml", CudaVersion.parse("12.4"), channels=[channel.as_uri()], backend=rattler()
    )
    assert refused.status == "refused" and same == blocked
    assert refused.reason.startswith("no CUDA <= 12.4 fits every CUDA package of the file: does not solve")


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
            result, new = plan_file(text, "f.yml", CudaVersion.parse("12.4"))
        except CondafixError:
            continue
        again, _ = plan_file(new, "f.yml", CudaVersion.parse("12.4"))
        assert not again.changed or not result.changed


# ---------------------------------------------------------------- templates and odd forms


@pytest.mark.parametrize("name", sorted(p.name for p in (FILES / "templates").glob("*.yml")))
def test_templates_exit_2_with_the_file_untouched(name: str, tmp_path: Path) -> None:
    target = tmp_path / name
    original = (FILES / "templates" / name).read_bytes()
    target.write_bytes(original)
    for target_cuda in ("12.4", "11.4"):
        done = run(str(target), "--cuda", target_cuda, "--offline", "--write")
        assert done.returncode == 2, done.stdout + done.stderr
        assert "template" in done.stderr and "Traceback" not in done.stderr and "internal error" not in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1
    assert target.read_bytes() == original and sorted(p.name for p in tmp_path.iterdir()) == [name]


def test_every_conda_spec_form_is_read(tmp_path: Path) -> None:
    text = (
        "dependencies:\n"
        "  - conda-forge::cuda-version=12.9\n"
        "  - cuda-nvcc 12.9.* *_0\n"
        "  - cuda-cudart>=12.0,<13\n"
        "  - \"libnvjitlink[version='>=12.0']\"\n"
        "  - cuda-nvrtc==12.9.86\n"
    )
    result, new = plan_file(text, "f.yml", CudaVersion.parse("12.4"))
    assert {m.kind for m in result.group} == {"pin", "component"} and len(result.group) == 5
    assert new == (
        "dependencies:\n"
        "  - conda-forge::cuda-version=12.4\n"
        "  - cuda-nvcc 12.4.* *_0\n"
        "  - cuda-cudart>=12.0,<12.5\n"
        "  - \"libnvjitlink[version='>=12.0,<=12.4']\"\n"
        "  - cuda-nvrtc==12.4\n"
    )
    again, _ = plan_file(new, "f.yml", CudaVersion.parse("12.4"))
    assert again.status == "ok" and not again.changed


def test_metapackage_is_a_pin_not_a_reason_to_add_cuda_version() -> None:
    text = "dependencies:\n  - cuda=12.5  # comment\n  - cupy\n"
    _result, new = plan_file(text, "m.yml", CudaVersion.parse("12.4"))
    assert new == "dependencies:\n  - cuda=12.4  # comment\n  - cupy\n" and "cuda-version" not in new
    refused, same = plan_file(text, "m.yml", CudaVersion.parse("11.4"))
    assert refused.status == "refused" and same == text and "crosses a major" in refused.reason
    allowed, same = plan_file(text, "m.yml", CudaVersion.parse("11.4"), allow_major=True)
    assert allowed.status == "refused" and same == text and "does not exist before CUDA 12" in allowed.reason


def test_mixed_majors_in_one_file_are_refused() -> None:
    text = "dependencies:\n  - nvcc_linux-64=11.8\n  - cuda-version=12.5\n"
    result, new = plan_file(text, "x.yml", CudaVersion.parse("12.4"))
    assert result.status == "refused" and new == text
    assert "contradict" in result.reason and "nvcc_linux-64=11.8" in result.reason and "CUDA 12.5" in result.reason


def test_a_kept_pin_is_never_contradicted() -> None:
    text = "dependencies:\n  - cuda-version>=12.0\n  - cuda-nvcc=12.2\n  - numba-cuda\n"
    result, new = plan_file(text, "k.yml", CudaVersion.parse("12.4"))
    assert result.status == "ok" and new == text  # the group is already bounded at 12.2
    text = "dependencies:\n  - cuda-version>=12.0\n  - cuda-nvcc>=12.2,<=12.3\n"
    result, new = plan_file(text, "k.yml", CudaVersion.parse("12.4"))
    assert result.status == "ok"
    text = "dependencies:\n  - cuda-version>=12.0\n  - cuda-cudart>=12.2\n  - cuda-nvcc=12.2\n"
    result, new = plan_file(text, "k.yml", CudaVersion.parse("12.1"))
    assert result.status == "change" and "cuda-nvcc=12.1" in new and "cuda-version>=12.0,<=12.1" in new


def test_unpinned_anchor_gets_the_pin_that_keeps_the_solve_under_the_driver() -> None:
    text = (FILES / "pytorch-gpu-unpinned-cudatoolkit.yml").read_text()
    result, new = plan_file(text, "t.yml", CudaVersion.parse("12.4"))
    assert "  - cudatoolkit=11.8\n" in new and result.status == "change"  # cudatoolkit ends at 11.8


# ---------------------------------------------------------------- pins checked on a channel


def test_pytorch_1_12_1_takes_the_cudatoolkit_it_was_built_for(channel: Path) -> None:
    text = (FILES / "pytorch-1.12-cudatoolkit-dev.yml").read_text().replace("  - cudatoolkit-dev=11.6", "  #")
    text = text.replace("  - ninja\n", "")
    result, new = plan_file(text, "p.yml", CudaVersion.parse("11.4"), channels=[channel.as_uri()], backend=rattler())
    assert result.status == "change" and "cudatoolkit=11.3" in new and "pytorch=1.12.1=*cuda11.3*" in new
    assert result.checked.startswith("checked on the channel")
    plain = text.replace("=*cuda11.6*", "")
    result, new = plan_file(plain, "p.yml", CudaVersion.parse("11.4"), channels=[channel.as_uri()], backend=rattler())
    assert "cudatoolkit=11.3" in new and any("CUDA 11.4: does not solve" in a for a in result.attempts)


def test_no_cuda_under_the_driver_solves_the_whole_file_so_it_is_refused(channel: Path) -> None:
    text = (FILES / "pytorch-gpu-unpinned-cudatoolkit.yml").read_text().replace("  - torchvision\n", "")
    result, new = plan_file(text, "t.yml", CudaVersion.parse("11.4"), channels=[channel.as_uri()], backend=rattler())
    assert result.status == "refused" and new == text and "does not solve" in result.reason
    result, new = plan_file(text, "t.yml", CudaVersion.parse("12.4"), channels=[channel.as_uri()], backend=rattler())
    assert result.status == "change" and "cudatoolkit=11.8" in new


def test_full_release_and_libraries_come_from_the_channel(channel: Path) -> None:
    text = "dependencies:\n  - cuda=12.9.1\n  - libcurand=10.3.10.19\n"
    offline, _ = plan_file(text, "c.yml", CudaVersion.parse("12.4"))
    assert offline.status == "refused" and "only known from the channel" in offline.reason
    result, new = plan_file(text, "c.yml", CudaVersion.parse("12.5"), channels=[channel.as_uri()], backend=rattler())
    assert result.status == "change" and new == "dependencies:\n  - cuda=12.4.1\n  - libcurand=10.3.5.147\n"


# ---------------------------------------------------------------- safe writes


def test_write_through_a_symlink_keeps_the_link(tmp_path: Path) -> None:
    real_dir = tmp_path / "shared"
    real_dir.mkdir()
    real = real_dir / "env.yml"
    real.write_text("dependencies:\n  - cuda-version=12.9\n")
    link = tmp_path / "environment.yml"
    link.symlink_to(real)
    done = run(str(link), "--cuda", "12.4", "--offline", "--write")
    assert done.returncode == 0, done.stderr
    assert link.is_symlink() and link.resolve() == real
    assert real.read_text() == "dependencies:\n  - cuda-version=12.4\n"
    assert (real_dir / "env.yml.bak").read_text() == "dependencies:\n  - cuda-version=12.9\n"


def test_a_symlinked_bak_is_neither_replaced_nor_written_through(tmp_path: Path) -> None:
    precious = tmp_path / "precious.txt"
    precious.write_text("do not overwrite\n")
    env = tmp_path / "environment.yml"
    env.write_text("dependencies:\n  - cuda-version=12.9\n")
    (tmp_path / "environment.yml.bak").symlink_to(precious)
    assert run(str(env), "--cuda", "12.4", "--offline", "--write").returncode == 0
    assert precious.read_text() == "do not overwrite\n"
    assert (tmp_path / "environment.yml.bak").is_symlink()  # the user's link, left as it is
    assert (tmp_path / "environment.yml.bak.1").read_text() == "dependencies:\n  - cuda-version=12.9\n"


def test_a_users_own_bak_is_never_overwritten(tmp_path: Path) -> None:
    env = tmp_path / "environment.yml"
    env.write_text("dependencies:\n  - cuda-version=12.9\n")
    (tmp_path / "environment.yml.bak").write_bytes(b"my own backup\n")
    done = run(str(env), "--cuda", "12.4", "--offline", "--write", "--json")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "environment.yml.bak").read_bytes() == b"my own backup\n"
    assert json.loads(done.stdout)["result"]["backup"] == str(tmp_path / "environment.yml.bak.1")
    assert (tmp_path / "environment.yml.bak.1").read_text() == "dependencies:\n  - cuda-version=12.9\n"
    env.write_text("dependencies:\n  - cuda-version=12.6\n")  # the next write keeps the earlier backup too
    assert run(str(env), "--cuda", "12.4", "--offline", "--write").returncode == 0
    assert (tmp_path / "environment.yml.bak.1").read_text() == "dependencies:\n  - cuda-version=12.9\n"
    assert (tmp_path / "environment.yml.bak.2").read_text() == "dependencies:\n  - cuda-version=12.6\n"


def test_an_edit_saved_while_condafix_plans_is_never_reverted(tmp_path: Path) -> None:
    """The bytes read at the start must still be there at write time, else nothing is written."""
    from condafix.cli import commands

    env = tmp_path / "environment.yml"
    read = "dependencies:\n  - cuda-version=12.9\n"
    env.write_text("dependencies:\n  - cuda-version=12.9\n  - numpy  # saved meanwhile\n")
    with pytest.raises(CondafixError, match="changed after condafix read it") as caught:
        commands.env_file(path=str(env), raw=read, source_name=str(env), cudas=["12.4"], write=True, offline=True)
    assert caught.value.exit_code == 2 and "\n" not in caught.value.summary
    assert env.read_text().endswith("# saved meanwhile\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["environment.yml"]  # no backup, no temp file


def test_an_edit_saved_between_the_backup_and_the_rename_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from condafix.files import atomic

    env = tmp_path / "environment.yml"
    env.write_text("dependencies:\n  - cuda-version=12.9\n")
    real_fsync = atomic.os.fsync
    calls: list[int] = []

    def editor_saves_during_the_write(fd: int) -> None:
        real_fsync(fd)
        calls.append(fd)
        if len(calls) == 2:  # the backup is written, the new content too: the user saves now
            env.write_text("dependencies:\n  - cuda-version=12.6\n")

    monkeypatch.setattr(atomic.os, "fsync", editor_saves_during_the_write)
    with pytest.raises(CondafixError, match="changed after condafix read it"):
        atomic.write_atomically(
            env, "dependencies:\n  - cuda-version=12.4\n", expected=b"dependencies:\n  - cuda-version=12.9\n"
        )
    assert env.read_text() == "dependencies:\n  - cuda-version=12.6\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["environment.yml"]


def test_full_disk_keeps_the_previous_backup_and_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    from condafix.files import atomic

    env = tmp_path / "environment.yml"
    env.write_text("dependencies:\n  - cuda-version=12.9\n")
    (tmp_path / "environment.yml.bak").write_text("the previous good backup\n")

    def full(_fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic.os, "fsync", full)
    with pytest.raises(CondafixError, match=r"could not write the backup .*No space left on device"):
        atomic.write_atomically(env, "dependencies:\n  - cuda-version=12.4\n")
    assert (tmp_path / "environment.yml.bak").read_text() == "the previous good backup\n"
    assert env.read_text() == "dependencies:\n  - cuda-version=12.9\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["environment.yml", "environment.yml.bak"]


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root")
def test_owner_and_mode_are_kept(tmp_path: Path) -> None:
    env = tmp_path / "environment.yml"
    env.write_text("dependencies:\n  - cuda-version=12.9\n")
    os.chown(env, 4321, 4322)
    env.chmod(0o604)
    assert run(str(env), "--cuda", "12.4", "--offline", "--write").returncode == 0
    for path in (env, tmp_path / "environment.yml.bak"):
        info = path.stat()
        assert (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (4321, 4322, 0o604)


def test_a_lone_version_glob_is_read_as_conda_reads_it() -> None:
    text = "dependencies:\n  - pytorch *cuda112*\n  - cudatoolkit=11.2\n"
    result, new = plan_file(text, "g.yml", CudaVersion.parse("11.4"))
    assert result.status == "ok" and new == text
    assert [m.spec for m in result.group] == ["cudatoolkit=11.2"]
    assert result.notes[0].line == 2 and "pytorch * *cuda112*" in result.notes[0].message


CONDA_PYTHON = os.environ.get("CONDAFIX_TEST_CONDA_PYTHON", "")
FORMS = [
    "conda-forge::cuda-version=12.4=h0_3",
    "cuda-nvcc 12.9.* *_0",
    "libnvjitlink[version='>=12.0,<=12.4']",
    "pytorch=1.12.1=*cuda11.3*",
    "pytorch * *cuda112*",
    "pytorch *cuda112*",
    "cuda-cudart>=12.0,<12.5",
    "cuda-version==12.4",
    "cudatoolkit 11.4.*",
    "cuda=12.4.1",
]


@pytest.mark.skipif(not CONDA_PYTHON, reason="real conda not installed (run .ci/conda-venv)")
def test_spec_forms_are_split_as_real_conda_reads_them() -> None:
    import json

    from condafix.files.envfile import split_spec

    probe = (
        "import json, sys\nfrom conda.models.match_spec import MatchSpec\n"
        "out = []\nfor s in json.loads(sys.argv[1]):\n    m = MatchSpec(s)\n"
        "    v = m.get_raw_value('version'); b = m.get_raw_value('build')\n"
        "    out.append([m.name, str(v) if v is not None else None, str(b) if b is not None else None])\n"
        "print(json.dumps(out))\n"
    )
    done = subprocess.run([CONDA_PYTHON, "-c", probe, json.dumps(FORMS)], capture_output=True, text=True, check=True)
    for form, (name, version, build) in zip(FORMS, json.loads(done.stdout), strict=True):
        ours = split_spec(form)
        assert ours is not None and ours.name == name, form
        assert (ours.build_text or None) == build, form
        assert ours.version_text.lstrip("=") in (version, version.replace(".*", "") if version else None), form


@pytest.mark.skipif(not CONDA_PYTHON, reason="real conda not installed (run .ci/conda-venv)")
def test_rewritten_pins_mean_the_chosen_cuda_to_real_conda() -> None:
    import json

    text = (
        "dependencies:\n  - conda-forge::cuda-version=12.9\n  - cuda-nvcc 12.9.*\n  - cuda-cudart>=12.0,<13\n"
        "  - \"libnvjitlink[version='>=12.0']\"\n  - cuda-nvrtc==12.9.86\n  - cuda-toolkit=12.9.1\n"
    )
    result, _new = plan_file(text, "f.yml", CudaVersion.parse("12.4"))
    specs = [e.new.strip().lstrip("- ").strip('"') for e in result.edits]
    assert len(specs) == 6
    probe = (
        "import json, sys\nfrom conda.models.match_spec import MatchSpec\n"
        "from conda.models.records import PackageRecord\n"
        "def rec(n, v): return PackageRecord(name=n, version=v, build='h0_0', build_number=0, channel='conda-forge',"
        " subdir='linux-64', fn=f'{n}-{v}-h0_0.conda')\n"
        "out = {}\nfor s in json.loads(sys.argv[1]):\n    m = MatchSpec(s)\n"
        "    out[s] = {v: m.match(rec(m.name, v)) for v in json.loads(sys.argv[2])}\n"
        "print(json.dumps(out))\n"
    )
    versions = ["12.4", "12.4.1", "12.4.131", "12.5", "12.5.0", "12.9", "12.9.86", "12.9.1"]
    done = subprocess.run(
        [CONDA_PYTHON, "-c", probe, json.dumps(specs), json.dumps(versions)], capture_output=True, text=True, check=True
    )
    for spec, matches in json.loads(done.stdout).items():
        assert any(ok for v, ok in matches.items() if v.startswith("12.4")), spec
        assert not any(ok for v, ok in matches.items() if not v.startswith("12.4")), (spec, matches)


@pytest.mark.parametrize("target", ["12.4", "11.4"])
def test_write_leaves_every_file_that_needs_no_change_byte_identical(target: str, tmp_path: Path) -> None:
    from condafix.cli import commands

    for name in NAMES:
        path = tmp_path / name
        original = (FILES / name).read_bytes()
        path.write_bytes(original)
        outcome = commands.env_file(
            path=str(path), raw=original.decode(), source_name=name, cudas=[target], write=True, offline=True
        )
        if outcome.result.status == "change":
            assert path.read_bytes() != original and (tmp_path / f"{name}.bak").read_bytes() == original
            continue
        assert path.read_bytes() == original, name
        assert not (tmp_path / f"{name}.bak").exists(), name
        assert outcome.code == (2 if outcome.result.status == "refused" else 0)


def test_several_files_one_verdict_each_and_the_worst_exit(tmp_path: Path) -> None:
    """pre-commit passes every staged file in one call: before, typer refused the second ('Got unexpected extra
    argument'). Each file gets its own verdict, in order; a missing one is its own error line; the exit is the worst."""
    fits = tmp_path / "fits.yml"
    fits.write_text("dependencies:\n  - cuda-version=11.4\n")
    moves = tmp_path / "moves.yml"
    moves.write_bytes((FILES / "pytorch-1.12-cudatoolkit-dev.yml").read_bytes())
    refused = tmp_path / "refused.yml"
    refused.write_bytes((FILES / "cuda-metapackage.yml").read_bytes())
    common = ("--driver", "470.82.01", "--offline", "--check")
    done = run("fits.yml", "moves.yml", *common, cwd=tmp_path)
    assert done.returncode == 1, done.stderr  # moves.yml would change
    assert done.stdout.index("fits.yml: nothing to change") < done.stdout.index("+++ b/moves.yml")
    done = run("fits.yml", "moves.yml", "refused.yml", "gone.yml", *common, cwd=tmp_path)
    assert done.returncode == 2
    assert "+++ b/moves.yml" in done.stdout and "refused: refused.yml" in done.stdout
    assert done.stderr == "error: gone.yml: no such file\n"
    assert run("fits.yml", "fits.yml", *common, cwd=tmp_path).returncode == 0
    assert moves.read_bytes() == (FILES / "pytorch-1.12-cudatoolkit-dev.yml").read_bytes()  # --check wrote nothing


def test_several_files_refuse_json_and_stdin_and_say_a_bad_driver_once(tmp_path: Path) -> None:
    a, b = tmp_path / "a.yml", tmp_path / "b.yml"
    for f in (a, b):
        f.write_text("dependencies:\n  - cuda-version=12.4\n")
    done = run(str(a), str(b), "--cuda", "12.4", "--json")
    assert done.returncode == 2 and "--json takes one file" in json.loads(done.stdout)["error"]["summary"]
    done = run(str(a), "-", "--cuda", "12.4", stdin="dependencies: []\n")
    assert done.returncode == 2 and "- (stdin) cannot be combined" in done.stderr
    done = run(str(a), str(b), "--driver", "abc")
    assert done.returncode == 2 and done.stderr.count("abc") == 1, done.stderr
