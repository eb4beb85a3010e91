"""`condafix env` on pixi manifests: scopes per feature, tomlkit round trip, reported majors, bad TOML."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from condafix.backends.choice import open_backend
from condafix.files.envfile import EnvFileError
from condafix.files.pixifile import plan_manifest
from condafix.knowledge.cuda import CudaVersion
from condafix.plan.solver import Backend

from .conftest import FIXTURES

PIXI = FIXTURES / "pixi"


def rattler() -> Backend:
    """The embedded solver without a prefix, as ``condafix env`` opens it outside conda."""
    return open_backend("rattler", prefix=None, offline=False)


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "condafix", "env", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "NO_COLOR": "1"},
        check=False,
    )


def test_features_move_on_their_own_and_a_newer_major_is_reported() -> None:
    raw = (PIXI / "pixi.toml").read_text()
    result, new = plan_manifest(raw, "pixi.toml", CudaVersion.parse("12.4"))
    assert result.status == "change"
    changed = [line for line in new.splitlines() if line not in raw.splitlines()]
    assert changed == ['cuda-version = "12.4.*"  # bumped by the last `pixi update`', 'cuda-version = "12.4.*"']
    cupy_table = new.split("[feature.cupy.target.linux-64.dependencies]\n", 1)[1].split("\n\n", 1)[0]
    assert cupy_table == 'cupy = ">=13"\ncuda-version = "12.4.*"'  # its own pin, beside the package
    assert 'cuda-version = "13.0.*"' in new  # the CUDA 13 feature is reported, not rewritten
    assert any("cuda13" in n.message and "reported, not rewritten" in n.message for n in result.notes)
    again, same = plan_manifest(new, "pixi.toml", CudaVersion.parse("12.4"))
    assert not again.changed and same == new


def test_old_driver_reports_every_cuda_12_scope_and_changes_nothing() -> None:
    raw = (PIXI / "pixi.toml").read_text()
    result, new = plan_manifest(raw, "pixi.toml", CudaVersion.parse("11.4"))
    assert result.status == "ok" and new == raw and not result.changed
    assert {n.message.split(":", 1)[0] for n in result.notes} == {"default", "cuda12", "cupy", "cuda13"}


def test_pyproject_tool_pixi_keeps_inline_tables_and_lowers_the_system_requirement() -> None:
    raw = (PIXI / "pyproject.toml").read_text()
    result, new = plan_manifest(raw, "pyproject.toml", CudaVersion.parse("12.4"))
    assert result.changed
    assert 'cuda-version = { version = ">=12.0,<12.5", channel = "conda-forge" }' in new
    assert 'cuda-nvrtc = "12.4.*"' in new and '[tool.pixi.system-requirements]\ncuda = "12.4"' in new
    assert [line for line in new.splitlines() if line not in raw.splitlines()] == [
        'cuda = "12.4"',
        'cuda-version = { version = ">=12.0,<12.5", channel = "conda-forge" }',
        'cuda-nvrtc = "12.4.*"',
    ]
    assert any("nvidia-nvjitlink-cu12" in n.spec for n in result.notes)


@pytest.mark.parametrize("target", ["12.4", "11.4"])
def test_a_manifest_that_fits_stays_byte_identical(target: str, tmp_path: Path) -> None:
    path = tmp_path / "pixi.toml"
    original = (PIXI / "fine.pixi.toml").read_bytes()
    path.write_bytes(original)
    done = run(str(path), "--cuda", target, "--offline", "--write")
    assert done.returncode == 0, done.stderr
    assert path.read_bytes() == original and not (tmp_path / "pixi.toml.bak").exists()


def test_write_and_check_on_a_pixi_manifest(tmp_path: Path) -> None:
    path = tmp_path / "pixi.toml"
    path.write_bytes((PIXI / "pixi.toml").read_bytes())
    assert run(str(path), "--cuda", "12.4", "--offline", "--check").returncode == 1
    assert run(str(path), "--cuda", "12.4", "--offline", "--write").returncode == 0
    assert (tmp_path / "pixi.toml.bak").read_bytes() == (PIXI / "pixi.toml").read_bytes()
    assert run(str(path), "--cuda", "12.4", "--offline", "--check").returncode == 0


def test_pin_checked_on_a_channel(channel: Path) -> None:
    raw = '[workspace]\nchannels = ["conda-forge"]\n\n[dependencies]\npython = "3.12.*"\nnumba-cuda = "*"\n'
    result, new = plan_manifest(
        raw, "pixi.toml", CudaVersion.parse("12.7"), channels=[channel.as_uri()], backend=rattler()
    )
    assert result.status == "change" and 'cuda-version = "12.6.*"' in new
    assert result.checked.startswith("checked on the channel")


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ('[workspace\nname = "x"\n', "pixi.toml:1:"),
        ('[dependencies]\ncuda-version = "12.9.*"\ncuda-version = "12.4.*"\n', "invalid TOML"),
        ("[dependencies]\ncuda-version = 12\n", "not a version string or a table"),
        ("[tool.other]\nx = 1\n", "not a pixi manifest"),
        ('[dependencies]\ncuda-version = "{{ cuda }}"\n', "template"),
        ('[system-requirements]\ncuda = "twelve"\n[dependencies]\ncupy = "*"\n', "not a CUDA version"),
    ],
)
def test_bad_manifests_give_one_line(text: str, needle: str, tmp_path: Path) -> None:
    with pytest.raises(EnvFileError, match=needle):
        plan_manifest(text, "pixi.toml", CudaVersion.parse("12.4"))
    path = tmp_path / "pixi.toml"
    path.write_text(text)
    done = run(str(path), "--cuda", "12.4", "--offline", "--write")
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    assert path.read_text() == text


toml_values = st.recursive(
    st.booleans() | st.integers() | st.text(max_size=12),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=10,
)
dep_tables = st.dictionaries(
    st.sampled_from(["cuda-version", "cudatoolkit", "cupy", "pytorch-cuda", "cuda", "cuda-nvcc", "python"]),
    st.sampled_from(["*", "12.9.*", ">=12.0,<13", "==11.8", "12.6.2", "x.y", "", ">=", "13"])
    | st.fixed_dictionaries(
        {"version": st.sampled_from(["*", "12.9.*", "bad"]), "build": st.sampled_from(["", "cuda12*"])}
    ),
    max_size=4,
)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    extra=toml_values,
    deps=dep_tables,
    sysreq=st.sampled_from([None, "12", "11.8", "13.0", "x"]),
    noise=st.text(max_size=40),
)
def test_fuzzed_manifests_never_crash(extra: object, deps: dict[str, object], sysreq: str | None, noise: str) -> None:
    import tomlkit

    doc: dict[str, object] = {"workspace": {"channels": ["conda-forge"]}, "dependencies": deps}
    if sysreq is not None:
        doc["system-requirements"] = {"cuda": sysreq}
    if isinstance(extra, dict):
        doc["feature"] = {"f": {"dependencies": deps, "extra": extra}}
    for text in (tomlkit.dumps(doc), noise):
        try:
            result, new = plan_manifest(text, "pixi.toml", CudaVersion.parse("12.4"))
        except EnvFileError:
            continue
        assert result.changed == (new != text)
        again, _ = plan_manifest(new, "pixi.toml", CudaVersion.parse("12.4"))
        assert not again.changed or not result.changed


def test_a_pyproject_without_tool_pixi_is_refused_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "pyproject.toml"
    path.write_text('[project]\nname = "x"\ndependencies = ["cupy-cuda12x"]\n')
    done = run(str(path), "--cuda", "12.4", "--offline")
    assert done.returncode == 2 and "no [tool.pixi] table" in done.stderr and len(done.stderr.splitlines()) == 1


def test_target_tables_of_other_platforms_stay_out_of_the_solve(channel: Path) -> None:
    raw = (
        '[workspace]\nchannels = ["conda-forge"]\nplatforms = ["linux-64", "osx-arm64"]\n\n'
        '[dependencies]\npython = "3.12.*"\nnumba-cuda = "*"\n\n'
        '[target.osx-arm64.dependencies]\nonly-on-macos = "*"\n'
    )
    result, new = plan_manifest(
        raw, "pixi.toml", CudaVersion.parse("12.4"), channels=[channel.as_uri()], backend=rattler()
    )
    assert result.status == "change" and 'cuda-version = "12.4.*"' in new, result.reason


def test_pytorch_cuda_in_a_feature_moves_or_is_reported() -> None:
    raw = (
        '[workspace]\nchannels = ["pytorch", "nvidia", "conda-forge"]\nplatforms = ["linux-64"]\n\n'
        '[feature.torch.dependencies]\npytorch = "2.4.*"\npytorch-cuda = "12.4.*"\n\n'
        '[environments]\ntorch = ["torch"]\n'
    )
    moved, new = plan_manifest(raw, "pixi.toml", CudaVersion.parse("12.2"))
    assert moved.status == "change" and 'pytorch-cuda = "12.1.*"' in new  # 12.2 has no pytorch-cuda: 12.1
    reported, same = plan_manifest(raw, "pixi.toml", CudaVersion.parse("11.4"))
    assert same == raw and reported.status == "ok" and "crosses a major" in reported.notes[0].message


def test_cuda_compat_is_a_driver_not_part_of_the_group() -> None:
    raw = '[workspace]\nchannels = ["conda-forge"]\n\n[dependencies]\ncuda-compat = "12.6.*"\ncuda-version = "12.4.*"\n'
    result, new = plan_manifest(raw, "pixi.toml", CudaVersion.parse("12.4"))
    assert result.status == "ok" and new == raw
