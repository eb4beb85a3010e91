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


# ---------------------------------------------------------------- pixi >= 0.71: CUDA on rich platforms

ISSUE_24 = """[workspace]
name = "gpu-sim"
channels = ["conda-forge"]
# the CUDA the cluster nodes run
platforms = [{ platform = "linux-64", cuda = "12.9" }]  # written by `pixi workspace platform add`

[dependencies]
python = "3.12.*"
cuda-version = "12.9.*"  # bumped by the last `pixi update`
numba-cuda = ">=0.15"
"""


def _changed(old: str, new: str) -> list[str]:
    return [line for line in new.splitlines() if line not in old.splitlines()]


def test_the_rich_platform_moves_with_the_cuda_group() -> None:
    """Before: cuda-version went to 12.4 and the platform still said 12.9, a manifest that contradicts itself."""
    result, new = plan_manifest(ISSUE_24, "pixi.toml", CudaVersion.parse("12.4"))
    assert result.status == "change"
    assert _changed(ISSUE_24, new) == [
        'platforms = [{ platform = "linux-64", cuda = "12.4" }]  # written by `pixi workspace platform add`',
        'cuda-version = "12.4.*"  # bumped by the last `pixi update`',
    ]
    assert "system-requirements" not in new  # the deprecated table is never newly written
    moved = next(e for e in result.edits if "platforms" in e.new)
    assert moved.line == 5 and moved.old.endswith('cuda = "12.9" }')
    again, same = plan_manifest(new, "pixi.toml", CudaVersion.parse("12.4"))
    assert not again.changed and same == new


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ('{ platform = "linux-64", cuda = "12" }', '{ platform = "linux-64", cuda = "12" }'),  # a major says 12.0
        ('{ platform = "linux-64", cuda = "12.9" }', '{ platform = "linux-64", cuda = "12.4" }'),
        (
            '{ name = "gpu", platform = "linux-64", cuda = { driver = "12.8", arch = "8.6" } }',
            '{ name = "gpu", platform = "linux-64", cuda = { driver = "12.4", arch = "8.6" } }',
        ),
        ('{ platform = "linux-64", __cuda = "12.6" }', '{ platform = "linux-64", __cuda = "12.4" }'),
    ],
)
def test_every_spelling_of_a_rich_platform_cuda(entry: str, expected: str) -> None:
    raw = f'[workspace]\nchannels = ["conda-forge"]\nplatforms = [{entry}]\n\n[dependencies]\ncuda-version = "12.9.*"\n'
    _result, new = plan_manifest(raw, "pixi.toml", CudaVersion.parse("12.4"))
    assert f"platforms = [{expected}]" in new
    assert 'cuda-version = "12.4.*"' in new


def test_features_bound_to_rich_platforms_move_them_and_follow_the_synthesized_name() -> None:
    raw = (PIXI / "rich.pixi.toml").read_text()
    result, new = plan_manifest(raw, "pixi.toml", CudaVersion.parse("12.4"))
    assert _changed(raw, new) == [
        '  { platform = "linux-64", cuda = "12.4" },  # `pixi workspace platform add linux-64 --cuda 12.9`',
        '  { name = "a100", platform = "linux-64", cuda = { driver = "12.4", arch = "8.0" } },',
        'platforms = ["linux-64-cuda-12-4"]  # the name pixi synthesizes for the entry above',
        'cuda-version = "12.4.*"',
        'cuda-version = "12.4.*"',
    ]
    assert '{ platform = "linux-64", cuda = "13", glibc = "2.34" }' in new  # the CUDA 13 platform stays
    notes = [n.message for n in result.notes]
    assert len([m for m in notes if 'cuda = "13"' in m]) == 1 and "reported, not rewritten" in notes[0]
    assert "[system-requirements]" not in new.replace("([system-requirements] is deprecated)", "")


def test_synthesized_names_are_pixis() -> None:
    """The names pixi's docs give: `linux-64-cuda-12-0` for the entry declaring only CUDA 12.0."""
    import tomlkit

    from condafix.files.pixiplatforms import synthesized_name

    def name(entry: str) -> str:
        return synthesized_name(tomlkit.parse(f"p = {entry}")["p"])

    assert name('{ platform = "linux-64", cuda = "12.0" }') == "linux-64-cuda-12-0"
    assert name('{ platform = "linux-64", cuda = "12.0", glibc = "2.28" }') == "linux-64-cuda-12-0"  # the default
    assert name('{ platform = "linux-64", cuda = "13", glibc = "2.34" }') == "linux-64-cuda-13-glibc-2-34"
    assert name('{ platform = "linux-64", cuda = { driver = "12.0", arch = "8.6" } }') == (
        "linux-64-cuda-12-0-cuda-arch-8-6"
    )


def test_system_requirements_are_still_read_and_rich_platforms_never_added() -> None:
    raw = (PIXI / "pixi.toml").read_text()
    _result, new = plan_manifest(raw, "pixi.toml", CudaVersion.parse("12.4"))
    assert 'platforms = ["linux-64", "osx-arm64"]' in new  # no CUDA written onto a plain platform list
    declared = '[workspace]\nplatforms = ["linux-64"]\n\n[system-requirements]\ncuda = "12.9"\n\n'
    raw = declared + '[dependencies]\ncuda-version = "12.9.*"\n'
    _result, new = plan_manifest(raw, "pixi.toml", CudaVersion.parse("12.4"))
    assert _changed(raw, new) == ['cuda = "12.4"', 'cuda-version = "12.4.*"']


def test_a_platform_newer_than_the_driver_without_cuda_pins_is_reported() -> None:
    raw = '[workspace]\nplatforms = [{ platform = "linux-64", cuda = "12.9" }]\n\n[dependencies]\nnumpy = "*"\n'
    result, new = plan_manifest(raw, "pixi.toml", CudaVersion.parse("12.4"))
    assert new == raw and not result.changed
    assert any("declares CUDA 12.9" in n.message and "reported, not rewritten" in n.message for n in result.notes)


def test_declared_cuda_reads_rich_platforms_per_environment() -> None:
    from condafix.files.pixifile import declared_cuda

    declared = declared_cuda((PIXI / "rich.pixi.toml").read_text(), "pixi.toml")
    assert declared["gpu"] == CudaVersion(major=12, minor=9) and declared["train"] == CudaVersion(major=12, minor=8)
    assert declared["next"] == CudaVersion(major=13, minor=0)
    assert declared["default"] == CudaVersion(major=13, minor=0)  # unbound: every platform, the newest


@pytest.mark.parametrize(
    ("entry", "needle"),
    [
        ('{ platform = "linux-64", cuda = "twelve" }', "is not a CUDA version"),
        ('{ platform = "linux-64", cuda = 12 }', "cuda must be a version"),
        ('{ platform = "linux-64", cuda = { arch = "8.6" } }', "cuda must be a version"),
    ],
)
def test_a_bad_rich_platform_gives_one_line(entry: str, needle: str, tmp_path: Path) -> None:
    path = tmp_path / "pixi.toml"
    path.write_text(f'[workspace]\nplatforms = [{entry}]\n\n[dependencies]\ncuda-version = "12.9.*"\n')
    done = run(str(path), "--cuda", "12.4", "--offline", "--write")
    assert done.returncode == 2 and needle in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr


def test_write_keeps_the_rich_manifest_a_valid_pixi_manifest(tmp_path: Path) -> None:
    import tomlkit

    path = tmp_path / "pixi.toml"
    path.write_bytes((PIXI / "rich.pixi.toml").read_bytes())
    assert run(str(path), "--cuda", "12.4", "--offline", "--write").returncode == 0
    before = tomlkit.parse((PIXI / "rich.pixi.toml").read_text()).unwrap()
    after = tomlkit.parse(path.read_text()).unwrap()
    assert [p if isinstance(p, str) else sorted(p) for p in after["workspace"]["platforms"]] == [
        p if isinstance(p, str) else sorted(p) for p in before["workspace"]["platforms"]
    ]
    assert after["feature"]["gpu"]["platforms"] == ["linux-64-cuda-12-4"]
    assert run(str(path), "--cuda", "12.4", "--offline", "--check").returncode == 0


rich_entries = st.lists(
    st.sampled_from(["linux-64", "osx-arm64", "linux-64-cuda-12-9"])
    | st.fixed_dictionaries(
        {"platform": st.sampled_from(["linux-64", "osx-arm64", ""])},
        optional={
            "name": st.sampled_from(["gpu", "linux-64"]),
            "cuda": st.sampled_from(["12", "12.9", "13.0", "11.8", "x", ""])
            | st.fixed_dictionaries({}, optional={"driver": st.sampled_from(["12.8", "13"]), "arch": st.just("8.6")}),
            "__cuda": st.sampled_from(["12.6", "12.6=0", "bad"]),
            "glibc": st.just("2.34"),
        },
    ),
    max_size=4,
)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(platforms=rich_entries, deps=dep_tables, bound=st.lists(st.sampled_from(["gpu", "linux-64-cuda-12-9"])))
def test_fuzzed_rich_platforms_never_crash(platforms: list[object], deps: dict[str, object], bound: list[str]) -> None:
    import tomlkit

    doc: dict[str, object] = {
        "workspace": {"channels": ["conda-forge"], "platforms": platforms},
        "dependencies": deps,
        "feature": {"f": {"platforms": bound, "dependencies": deps}},
    }
    text = tomlkit.dumps(doc)
    try:
        result, new = plan_manifest(text, "pixi.toml", CudaVersion.parse("12.4"))
    except EnvFileError:
        return
    assert result.changed == (new != text)
    again, _ = plan_manifest(new, "pixi.toml", CudaVersion.parse("12.4"))
    assert not again.changed or not result.changed


def test_targets_select_as_pixi_does_and_follow_a_renamed_platform(channel: Path) -> None:
    """`[target.<key>]`: a subdir, a family (linux, unix, win, osx), a glob or a platform's name (pixi's
    TargetSelector); the rich platform's name is synthesized, so its target tables are renamed with it."""
    raw = (
        '[workspace]\nchannels = ["conda-forge"]\n'
        'platforms = [{ platform = "linux-64", cuda = "12.9" }, "osx-arm64"]\n\n'
        '[dependencies]\npython = "3.12.*"\nnumba-cuda = "*"\n\n'
        '[target.osx.dependencies]\nonly-on-macos = "*"\n\n'
        '[target.linux-64-cuda-12-9.dependencies]  # the GPU nodes\ncuda-version = "12.9.*"\n\n'
        '[target.linux-64-cuda-12-9.tasks]\ntrain = "python train.py"\n'
    )
    result, new = plan_manifest(
        raw, "pixi.toml", CudaVersion.parse("12.4"), channels=[channel.as_uri()], backend=rattler()
    )
    assert result.status == "change", result.reason
    assert _changed(raw, new) == [
        'platforms = [{ platform = "linux-64", cuda = "12.4" }, "osx-arm64"]',
        "[target.linux-64-cuda-12-4.dependencies]  # the GPU nodes",
        'cuda-version = "12.4.*"',
        "[target.linux-64-cuda-12-4.tasks]",
    ]
    assert [e.line for e in result.edits if e.reason == "follows the renamed platform"] == [12]  # once a table
    gpu_only = raw.replace('cuda-version = "12.9.*"\n', 'cuda-version = "12.9.*"\nnot-on-any-channel = "*"\n')
    variants = [raw + f'\n[target.{key}.dependencies]\nnot-on-any-channel = "*"\n' for key in ("linux", '"linux-*"')]
    for missing in [gpu_only, *variants]:  # each table is in the linux-64 solve, so the check fails
        refused, same = plan_manifest(
            missing, "pixi.toml", CudaVersion.parse("12.4"), channels=[channel.as_uri()], backend=rattler()
        )
        assert refused.status == "refused" and same == missing, refused.reason
    elsewhere = raw.replace('only-on-macos = "*"', 'not-on-any-channel = "*"')  # [target.osx]: not in it
    assert (
        plan_manifest(
            elsewhere, "pixi.toml", CudaVersion.parse("12.4"), channels=[channel.as_uri()], backend=rattler()
        )[0].status
        == "change"
    )


def test_env_notes_say_what_pixi_makes_of_each_platform_on_this_driver() -> None:
    """pixi's outcomes (crates/pixi_core/src/workspace/virtual_packages.rs): as resolved, by accident, or none
    of the declared platforms satisfied (`missing virtual packages: __cuda >= 13`, errors.rs)."""
    result, _new = plan_manifest((PIXI / "rich.pixi.toml").read_text(), "pixi.toml", CudaVersion.parse("12.4"))
    moved = [e.reason for e in result.edits if "__cuda moves" in e.reason]
    assert moved == [
        "the platform's __cuda moves with the group to CUDA 12.4 (as declared (__cuda 12.9), pixi runs it on a CUDA "
        "12.4 driver at best only by accident)",
        "the platform's __cuda moves with the group to CUDA 12.4 (as declared (__cuda 12.8), pixi runs it on a CUDA "
        "12.4 driver at best only by accident)",
    ]
    (note,) = [n.message for n in result.notes if 'cuda = "13"' in n.message]
    assert (
        "pixi: cannot run here as declared: `CONDA_OVERRIDE_CUDA=12.4 pixi install` finds no declared platform this "
        "driver satisfies (missing virtual packages: __cuda >= 13): reported, not rewritten"
    ) in note


def test_system_requirements_beside_a_rich_platform_say_that_pixi_stops_there() -> None:
    """pixi's migration refuses the mix (crates/pixi_manifest/src/toml/manifest.rs); condafix reads both."""
    rich = '[workspace]\nplatforms = [{ platform = "linux-64", cuda = "12.9" }]\n\n'
    plain = '[workspace]\nplatforms = ["linux-64", { name = "osx-arm64" }]\n\n'  # no virtual packages: still plain
    sysreq = '[system-requirements]\ncuda = "12.9"\n\n[dependencies]\ncuda-version = "12.9.*"\n'
    for head, stops in ((rich, True), (plain, False)):
        result, new = plan_manifest(head + sysreq, "pixi.toml", CudaVersion.parse("12.4"))
        said = [n.message for n in result.notes if "stops on this manifest" in n.message]
        assert bool(said) == stops and 'cuda = "12.4"' in new and "[system-requirements]" in new
    alone, _ = plan_manifest(rich + '[dependencies]\ncuda-version = "12.9.*"\n', "pixi.toml", CudaVersion.parse("12.4"))
    assert not [n for n in alone.notes if "stops on this manifest" in n.message]


def test_write_renames_the_target_tables_and_a_second_run_has_nothing_to_do(tmp_path: Path) -> None:
    path = tmp_path / "pixi.toml"
    raw = (
        '[workspace]\nchannels = ["conda-forge"]\nplatforms = [{ platform = "linux-64", cuda = "12.9" }]\n\n'
        '[feature.gpu.target.linux-64-cuda-12-9.dependencies]\ncuda-version = "12.9.*"\nnumba-cuda = "*"\n\n'
        '[environments]\ngpu = ["gpu"]\n'
    )
    path.write_text(raw)
    assert run(str(path), "--cuda", "12.4", "--offline", "--write").returncode == 0
    assert _changed(raw, path.read_text()) == [
        'platforms = [{ platform = "linux-64", cuda = "12.4" }]',
        "[feature.gpu.target.linux-64-cuda-12-4.dependencies]",
        'cuda-version = "12.4.*"',
    ]
    assert (tmp_path / "pixi.toml.bak").read_text() == raw
    assert run(str(path), "--cuda", "12.4", "--offline", "--check").returncode == 0
