"""Replay the GPU matrix (issue 13) against condafix's compile-path verdict: it must predict every cell.

The captures in tests/fixtures/gpu/matrix-*.json and h200-*.{json,txt} come from tests/gpu/matrix.py and
tests/gpu/compile_paths_e2e.sh on an H200 with driver 580.159.04 (CUDA 13.0). Each cell becomes an env of
dist-info names (what condafix reads) and the measured outcome is compared with ``compile_paths``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from condafix.detect import driver
from condafix.diagnose import compilepath, verdict
from condafix.diagnose.explain import explain
from condafix.env import envinfo

from .conftest import FIXTURES

GPU = FIXTURES / "gpu"
DRIVER = "13.0"
FULL = {
    "13.0": "13.0.88",
    "13.1": "13.1.115",
    "13.2": "13.2.86",
    "13.3": "13.3.33",
    "13.4": "13.4.92",
    "13.5": "13.5.37",
}


def load(name: str) -> list[dict[str, Any]]:
    return list(json.loads((GPU / name).read_text()))


def full(version: str) -> str:
    return FULL[version.split("-")[0][:4]] if version[:4] in FULL else version


def venv(tmp_path: Path, name: str, dists: dict[str, str | None]) -> envinfo.EnvInfo:
    prefix = tmp_path / name
    site = prefix / "lib" / "python3.12" / "site-packages"
    site.mkdir(parents=True)
    (prefix / "pyvenv.cfg").write_text("home = /usr/bin\n")
    for dist, version in dists.items():
        if version is not None:
            (site / f"{dist}-{version}.dist-info").mkdir()
    return envinfo.read_env(prefix)


def predict(env: envinfo.EnvInfo, env_vars: dict[str, str] | None = None) -> compilepath.CompilePath:
    (path,) = compilepath.compile_paths(env, driver.detect(cuda=DRIVER).cuda_version, env_vars=env_vars)
    return path


def test_the_matrix_ran_on_a_13_0_driver() -> None:
    meta = json.loads((GPU / "matrix-meta.json").read_text())
    assert meta["image"]["dists"]["numba-cuda"] == "0.30.4" and "580.159.04" in meta["machine"]
    assert len(load("matrix-link.json")) == 78 and len(load("matrix-numba.json")) == 16
    assert len(load("matrix-numba-13.5.json")) == 16


def test_three_sources_agreed_on_the_h200_with_this_code() -> None:
    parity = json.loads((GPU / "h200-doctor-parity.json").read_text())["result"]["driver"]
    assert {a["source"]: a["cuda"] for a in parity["attempts"] if a["ok"]} == {
        "nvml": "13.0",
        "libcuda": "13.0",
        "nvidia-smi": "13.0",
    }
    banner = driver.parse_smi_banner((FIXTURES / "smi" / "h200-580.159.04-banner.txt").read_text())
    assert (banner.cuda, banner.driver_version, [g.name for g in banner.gpus]) == (
        "13.0",
        "580.159.04",
        ["NVIDIA H200"],
    )
    gpus = driver.parse_smi_query_gpu((FIXTURES / "smi" / "h200-580.159.04-query-gpu.csv").read_text())
    assert driver.min_compute_capability(gpus) == parity["cuda_arch"] == "9.0"


@pytest.mark.parametrize(
    "cell",
    load("matrix-numba.json") + load("matrix-numba-13.5.json"),
    ids=lambda c: f"{c['nvvm']}-{c['nvjitlink']}-{c['flags']}",
)
def test_numba_cuda_cells(cell: dict[str, Any], tmp_path: Path) -> None:
    linker = cell["nvjitlink"]
    if linker == "none":  # removed from site-packages, but numba-cuda found /usr/local/cuda's (recorded)
        assert cell["have_nvjitlink"] is True
        linker = cell["nvjitlink_version"]
    env = venv(
        tmp_path,
        "e",
        {
            "numba_cuda": "0.30.4",
            "nvidia_nvvm": full(cell["nvvm"]),
            "nvidia_nvjitlink": full(linker),
        },
    )
    path = predict(env)
    assert path.path == "nvjitlink"
    assert (path.outcome == "ok") is cell["ran"]
    if not cell["ran"]:
        assert path.outcome == "link-fails"
        measured = cell["error"].split(":")[0].split()[0]  # ERROR_OUTDATED_LIBRARY or ERROR_PTX_COMPILE
        assert measured in path.message
        expected = "ERROR_PTX_COMPILE" if cell["flags"] == "debug" else "ERROR_OUTDATED_LIBRARY"
        assert measured == expected  # debug=True turns LTO off: nvJitLink then compiles the PTX itself


@pytest.mark.parametrize(
    "cell", load("matrix-numba-nolink.json"), ids=lambda c: f"{c['numba']}-{c['nvvm']}-{c['flags']}"
)
def test_driver_jit_cells(cell: dict[str, Any], tmp_path: Path) -> None:
    dists: dict[str, str | None] = {"nvidia_nvvm": full(cell["nvvm"])}
    if cell["numba"] == "builtin":
        dists["numba"] = "0.68.0"
    else:
        dists["numba_cuda"] = "0.30.4"
        assert cell["have_nvjitlink"] is False  # really hidden
    path = predict(venv(tmp_path, "e", dists))
    assert path.path == "driver-jit"
    assert (path.outcome == "ok") is cell["ran"]
    if not cell["ran"]:
        assert "UNSUPPORTED_PTX_VERSION" in cell["error"] and path.outcome == "jit-fails"


@pytest.mark.parametrize(
    "cell", load("matrix-link.json"), ids=lambda c: f"{c['nvvm']}-{c['input']}-{c['nvjitlink'] or 'driver'}"
)
def test_link_and_driver_jit_cells(cell: dict[str, Any], tmp_path: Path) -> None:
    """Link one NVVM's PTX / LTO-IR with one nvJitLink (or hand the PTX to the driver), load, launch."""
    dists: dict[str, str | None] = {
        "numba_cuda": "0.30.4",
        "nvidia_nvvm": FULL[cell["nvvm"]],
        "nvidia_nvjitlink": FULL[cell["nvjitlink"]] if cell["nvjitlink"] else None,
    }
    path = predict(venv(tmp_path, "e", dists))
    ran = bool(cell.get("ran"))
    assert (path.outcome == "ok") is ran, (path.message, cell)
    if cell["nvjitlink"] is None:
        assert path.path == "driver-jit" and (ran or cell["load"] == "CUDA_ERROR_UNSUPPORTED_PTX_VERSION")
    elif not ran:
        wanted = "ERROR_OUTDATED_LIBRARY" if cell["input"] == "ltoir" else "ERROR_PTX_COMPILE"
        assert cell["link"] == wanted and wanted in path.message
    else:
        assert cell["link"] == "SUCCESS" and cell["value"] == 42  # SASS from a newer nvJitLink ran on 13.0


@pytest.mark.parametrize("cell", load("matrix-cupy.json"), ids=lambda c: f"{c['nvrtc']}-{c['CUPY_COMPILE_WITH_PTX']}")
def test_cupy_cells(cell: dict[str, Any], tmp_path: Path) -> None:
    env = venv(tmp_path, "e", {"cupy_cuda13x": cell["cupy"], "nvidia_cuda_nvrtc": full(cell["nvrtc"])})
    env_vars = {"CUPY_COMPILE_WITH_PTX": "1"} if cell["CUPY_COMPILE_WITH_PTX"] == "1" else {}
    path = predict(env, env_vars)
    assert path.path == ("driver-jit" if env_vars else "nvrtc-cubin")
    assert (path.outcome == "ok") is cell["ran"]


# ---------------------------------------------------------------- condafix run on the GPU machine itself


@pytest.mark.parametrize(
    ("case", "status", "path", "outcome", "kernel"),
    [
        ("shipped", "ok", "nvjitlink", "ok", "kernel ran"),
        ("nvvm13.2-njl13.0", "mismatch", "nvjitlink", "link-fails", "ERROR_OUTDATED_LIBRARY"),
        ("nvvm13.2-nonvjitlink", "mismatch", "driver-jit", "jit-fails", "CUDA_ERROR_UNSUPPORTED_PTX_VERSION"),
    ],
)
def test_doctor_on_the_gpu_predicted_the_kernel(case: str, status: str, path: str, outcome: str, kernel: str) -> None:
    report = json.loads((GPU / f"h200-doctor-{case}.json").read_text())["result"]
    assert report["status"] == status
    (numba,) = [p for p in report["compile_paths"] if p["kind"] == "numba-cuda"]
    assert (numba["path"], numba["outcome"]) == (path, outcome)
    assert kernel in (GPU / f"h200-kernel-{case}.txt").read_text()
    probe = [f for f in report["findings"] if f["code"].startswith("probe")]
    would_fail = [f for f in probe if f["severity"] == "error"]
    assert bool(would_fail) is (path == "driver-jit" and outcome == "jit-fails")


def test_doctor_captures_replay_offline(tmp_path: Path) -> None:
    for case in ("shipped", "nvvm13.2-njl13.0", "nvvm13.2-nonvjitlink"):
        recorded = json.loads((GPU / f"h200-doctor-{case}.json").read_text())["result"]
        dists = {c["name"].replace("-", "_"): c["version"] for c in recorded["env"]["components"]}
        env = venv(tmp_path, case, dict(dists))
        report = verdict.diagnose(driver.detect(cuda=DRIVER), env)
        assert report.status == recorded["status"]
        # jax is left out: the capture judged XLA's ptxas by nvidia-nvvm; ptxas ships with nvcc (fixed since)
        assert [(p.consumer, p.path, p.outcome) for p in report.compile_paths if p.kind != "jaxlib"] == [
            (p["consumer"], p["path"], p["outcome"]) for p in recorded["compile_paths"] if p["kind"] != "jaxlib"
        ]


def test_kernel_errors_are_explained_by_their_family() -> None:
    outdated = explain((GPU / "h200-kernel-nvvm13.2-njl13.0.txt").read_text())
    assert outdated.family == "nvjitlink_outdated"
    jit = explain((GPU / "h200-kernel-nvvm13.2-nonvjitlink.txt").read_text())
    assert (jit.family, jit.toolkit_cuda, jit.driver_cuda) == ("ptx_version", ("13.2",), ("13.0",))
