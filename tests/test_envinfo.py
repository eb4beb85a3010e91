"""Reading prefixes from disk: records, history, pip wheels, env lookup, and bad input."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from condafix.env import condameta, envinfo
from condafix.errors import InspectError

from .conftest import CUDA12_ENV, SEED_ENV


def test_reads_cuda_parts_of_a_cuda12_env(make_prefix: Callable[..., Path]) -> None:
    history = (
        "==> 2025-06-01 10:00:00 <==\n# cmd: conda create -n env numba-cuda python=3.12\n"
        "# update specs: ['numba-cuda', 'python=3.12']\n"
    )
    prefix = make_prefix(CUDA12_ENV, history=history)
    env = envinfo.read_env(prefix, "-p")
    by_name = {c.name: c for c in env.components}
    assert by_name["cuda-version"].cuda == "12.9" and by_name["cuda-version"].role == "pin"
    assert by_name["cuda-nvvm-impl"].role == "nvvm" and by_name["cuda-nvvm-impl"].cuda == "12.9"
    assert by_name["libnvjitlink"].role == "nvjitlink"
    assert "python" not in by_name
    assert {c.name for c in env.jit_consumers} == {"numba", "numba-cuda"}
    assert env.requested_specs == ("numba-cuda", "python=3.12")
    assert env.channels == ("conda-forge",)
    assert env.package_count == len(CUDA12_ENV)


def test_pip_wheels_are_found_and_conda_python_packages_skipped(make_prefix: Callable[..., Path]) -> None:
    prefix = make_prefix(
        SEED_ENV,
        pip=(
            ("nvidia_cuda_nvcc_cu12", "12.4.131"),
            ("nvidia_nvjitlink_cu12", "12.4.127"),
            ("numba", "0.56.4"),
            ("requests", "2.32.0"),
        ),
    )
    env = envinfo.read_env(prefix)
    pip = {c.name: c for c in env.components if c.source == "pip"}
    assert set(pip) == {"nvidia-cuda-nvcc-cu12", "nvidia-nvjitlink-cu12"}  # numba is a conda record here
    assert pip["nvidia-cuda-nvcc-cu12"].cuda == "12.4"


def test_venv_without_conda_meta(tmp_path: Path) -> None:
    (tmp_path / "pyvenv.cfg").write_text("home = /usr/bin\n")
    site = tmp_path / "lib" / "python3.12" / "site-packages"
    (site / "nvidia_nvvm-13.5.37.dist-info").mkdir(parents=True)
    (site / "numba_cuda-0.30.4.dist-info").mkdir()
    env = envinfo.read_env(tmp_path, "-p")
    assert env.kind == "venv"
    assert {(c.name, c.cuda) for c in env.components} == {("nvidia-nvvm", "13.5"), ("numba-cuda", None)}


@pytest.mark.parametrize(
    ("build", "cuda"),
    [
        ("cuda129_generic_py312_h1a2b3c4_300", "12.9"),
        ("cuda118_py310hbf661d7_301", "11.8"),
        ("py3.10_cuda11.8_cudnn8.7.0_0", "11.8"),
        ("cpu_generic_py312_h1_0", None),
        ("cuda130_mkl_py313_h0_1", "13.0"),
        ("py3.10_cuda11.3_cudnn8.3.2_0", "11.3"),  # the paste reader once read this as 1.1
        ("cuda_11.8", "11.8"),
        ("py38_cu102", "10.2"),  # torchvision on the pytorch channel
        ("cuda112py39h1234567_0", "11.2"),
        ("cuda1_0", None),
    ],
)
def test_cuda_of_build(build: str, cuda: str | None) -> None:
    from condafix.knowledge import roles

    assert roles.cuda_of_build(build) == cuda


def test_pytorch_build_string_gives_its_cuda(make_prefix: Callable[..., Path]) -> None:
    prefix = make_prefix([("pytorch", "2.4.0", "cuda118_py310hbf661d7_301", "linux-64")])
    (comp,) = envinfo.read_env(prefix).components
    assert (comp.role, comp.cuda) == ("framework", "11.8")


def test_history_replay() -> None:
    text = (
        "==> 2024-05-01 10:00:00 <==\n# cmd: conda create -n x numba cudatoolkit=11.7\n"
        "# update specs: ['numba', 'cudatoolkit=11.7']\n"
        "==> 2024-05-02 10:00:00 <==\n# update specs: ['conda-forge::cudatoolkit=11.4', 'numpy>=1.23']\n"
        "# remove specs: ['numpy']\n# update specs: not-a-list\n"
        "==> 2024-05-03 10:00:00 <==\n# cmd: conda install cudatoolkit=11.8\n# install specs: ['cudatoolkit=11.8']\n"
    )
    # conda replays only revisions with a `# cmd:` line (History.get_user_requests): the second is skipped
    assert tuple(condameta.parse_history(text).requested_specs().values()) == ("numba", "cudatoolkit=11.8")


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("{not json", "invalid JSON at line 1 column 2"),
        ("[1, 2]", "expected a JSON object"),
        ('{"name": "x", "version": "1"}', "missing 'build'"),
    ],
)
def test_broken_record_is_one_clear_error(make_prefix: Callable[..., Path], content: str, needle: str) -> None:
    prefix = make_prefix(SEED_ENV)
    (prefix / "conda-meta" / "zzz-broken-1.0-0.json").write_text(content)
    with pytest.raises(InspectError, match=needle) as info:
        envinfo.read_env(prefix)
    assert "conda-meta/zzz-broken-1.0-0.json" in str(info.value) and info.value.exit_code == 3


def test_missing_and_non_conda_prefixes(tmp_path: Path) -> None:
    with pytest.raises(InspectError, match="prefix does not exist"):
        envinfo.read_env(tmp_path / "nope")
    with pytest.raises(InspectError, match="not a conda environment"):
        envinfo.read_env(tmp_path)


def test_named_env_lookup(make_prefix: Callable[..., Path], tmp_path: Path) -> None:
    prefix = make_prefix(SEED_ENV, name="gpu")
    env = {"CONDA_ENVS_PATH": str(tmp_path / "envs")}
    assert envinfo.find_named_env("gpu", env) == prefix
    with pytest.raises(InspectError, match="no environment named 'nope'"):
        envinfo.find_named_env("nope", env)
    with pytest.raises(InspectError, match="not both"):
        envinfo.resolve_prefix(name="gpu", path="/x", env=env)


def test_default_is_conda_prefix(make_prefix: Callable[..., Path]) -> None:
    prefix = make_prefix(SEED_ENV)
    found, how = envinfo.resolve_prefix(name=None, path=None, env={"CONDA_PREFIX": str(prefix)})
    assert (found, how) == (prefix, "$CONDA_PREFIX")
    assert envinfo.resolve_prefix(name=None, path=None, env={}) == (None, None)


def test_system_toolkit_from_header_and_version_json(tmp_path: Path) -> None:
    (tmp_path / "include").mkdir()
    (tmp_path / "include" / "cuda.h").write_text("#define CUDA_VERSION 12040\n")
    found = envinfo.system_toolkit({"CUDA_HOME": str(tmp_path)})
    assert found is not None and (found.cuda, found.has_version_json) == ("12.4", False)
    (tmp_path / "version.json").write_text('{"cuda": {"name": "CUDA SDK", "version": "12.8.1"}}')
    found = envinfo.system_toolkit({"CUDA_HOME": str(tmp_path)})
    assert found is not None and (found.cuda, found.has_version_json) == ("12.8", True)


def test_channel_names() -> None:
    assert envinfo.channel_name("https://conda.anaconda.org/conda-forge/linux-64") == "conda-forge"
    assert envinfo.channel_name("https://conda.anaconda.org/nvidia") == "nvidia"
    assert envinfo.channel_name("file:///tmp/ch/noarch") == "file:///tmp/ch"
    assert envinfo.channel_name("file:///tmp/ch/noarch/x-1-0.tar.bz2") == "file:///tmp/ch"
    assert envinfo.channel_name("https://mirror.example.com/conda-forge/linux-64") == (
        "https://mirror.example.com/conda-forge"
    )
    assert envinfo.channel_name(None) is None


def _conda_install(root: Path, *envs: str) -> Path:
    """A conda install on disk as its installer leaves it: conda-meta, condabin, envs/NAME/conda-meta."""
    (root / "conda-meta").mkdir(parents=True)
    (root / "condabin").mkdir()
    for name in envs:
        (root / "envs" / name / "conda-meta").mkdir(parents=True)
    return root


def test_named_env_is_found_in_miniconda_without_conda_exe(tmp_path: Path) -> None:
    """Issue 24: `-n gpu` did not find ~/miniconda3/envs/gpu unless CONDA_EXE was set."""
    root = _conda_install(tmp_path / "miniconda3", "gpu")
    env = {"HOME": str(tmp_path)}  # no CONDA_EXE, no CONDA_ROOT: a shell where conda was never activated
    assert envinfo.find_named_env("gpu", env) == root / "envs" / "gpu"
    assert envinfo.find_named_env("base", env) == root


def test_environments_txt_points_to_an_install_elsewhere(tmp_path: Path) -> None:
    root = _conda_install(tmp_path / "tools" / "forge", "ml", "gpu")
    (tmp_path / ".conda").mkdir()
    (tmp_path / ".conda" / "environments.txt").write_text(f"{root}\n{root / 'envs' / 'ml'}\n")
    elsewhere = tmp_path / "scratch" / "gpu2"
    (elsewhere / "conda-meta").mkdir(parents=True)  # created with -p: conda's -n never finds it
    with open(tmp_path / ".conda" / "environments.txt", "a") as handle:
        handle.write(f"{elsewhere}\n")
    env = {"HOME": str(tmp_path)}
    assert envinfo.find_named_env("gpu", env) == root / "envs" / "gpu"
    with pytest.raises(InspectError):
        envinfo.find_named_env("gpu2", env)


def test_a_typo_lists_the_known_envs_with_close_matches(tmp_path: Path) -> None:
    _conda_install(tmp_path / "miniforge3", "gpu", "pytorch", "ml")
    with pytest.raises(InspectError) as info:
        envinfo.find_named_env("pytroch", {"HOME": str(tmp_path)})
    hints = [h.text for h in info.value.hints]
    assert hints[0] == "did you mean 'pytorch'?"
    assert any(h.startswith("known environments: ") and "gpu" in h and "ml" in h and "base" in h for h in hints)
    assert info.value.exit_code == 3
