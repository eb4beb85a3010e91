"""Rules every explanation keeps, over generated pastes (hypothesis): the driver's CUDA comes in the forms
tools print it (nvidia-smi, the encoded 'CUDA Driver Version', PyTorch's 'found version'), next to one of
the errors condafix knows, a look-alike, and maybe a pip venv or a conda env.

- no pin or build newer than the driver's CUDA that was read;
- no driver upgrade unless the toolkit is the newer side;
- no conda command in a pip venv; no pin or driver upgrade for a look-alike;
- every fact names its line, and that line holds the text it was read from.
"""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from condafix.diagnose.explain import explain
from condafix.diagnose.families import LOOKALIKES
from condafix.knowledge.cuda import CudaVersion, knowledge

KB = knowledge()
DRIVERS = [row.linux for row in KB.min_driver if row.cuda >= CudaVersion(major=11, minor=0)]
CUDAS = sorted({row.cuda for row in KB.min_driver if row.cuda >= CudaVersion(major=11, minor=0)})
PTXS = sorted(KB.ptx_to_cuda)
_PINNED = re.compile(r"(?:cuda-version|cudatoolkit|pytorch-cuda)=(\d{1,2}\.\d{1,2})|\+cu(\d{2})(\d)\b")


@st.composite
def driver_lines(draw: st.DrawFn) -> tuple[str, CudaVersion]:
    """One way a paste states the driver's CUDA, and that CUDA."""
    cuda = draw(st.sampled_from(CUDAS))
    encoded = cuda.major * 1000 + cuda.minor * 10
    driver = draw(st.sampled_from(DRIVERS))
    form = draw(st.integers(0, 3))
    if form == 0:
        return f"| NVIDIA-SMI {driver}   Driver Version: {driver}   CUDA Version: {cuda}     |", cuda
    if form == 1:
        return f"  Driver Version: {driver}\n  CUDA Driver Version: {encoded}", cuda
    if form == 2:
        return f"CUDA Driver Version          : {encoded}", cuda
    return f"<cuda_version>{cuda}</cuda_version>", cuda


@st.composite
def errors(draw: st.DrawFn, cuda: CudaVersion) -> str:
    """One error line; where it states the driver's CUDA itself (PyTorch, conda's __cuda) it agrees."""
    kind = draw(st.integers(0, 6))
    if kind == 0:
        ptx, accepted = draw(st.sampled_from(PTXS)), draw(st.sampled_from(PTXS))
        return f"ptxas application ptx input, line 9; fatal   : Unsupported .version {ptx}; current version is " + (
            f"'{accepted}'"
        )
    if kind == 1:
        return "numba.cuda.cudadrv.driver.CudaAPIError: [222] Call to cuLinkAddData results in " + (
            "CUDA_ERROR_UNSUPPORTED_PTX_VERSION"
        )
    if kind == 2:
        return "RuntimeError: CUDA error: CUDA driver version is insufficient for CUDA runtime version"
    if kind == 3:
        need = draw(st.sampled_from(CUDAS))
        return f"  - package cuda-cudart-{need}.0-0 has constraint __cuda >={need} conflicting with __cuda-{cuda}-0"
    if kind == 4:
        return (
            "RuntimeError: Unexpected error from cudaGetDeviceCount(). Error 803: system has unsupported "
            "display driver / cuda driver combination"
        )
    if kind == 5:
        return draw(
            st.sampled_from(
                [
                    "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB",
                    "RuntimeError: CUDA error: an illegal memory access was encountered",
                    "RuntimeError: No CUDA GPUs are available",
                    "ldconfig: /usr/lib/wsl/lib/libcuda.so.1 is not a symbolic link",
                    "misc/socket.cc:483 NCCL WARN socketStartConnect: Connect to 10.0.0.2<45763> failed",
                ]
            )
        )
    encoded = cuda.major * 1000 + cuda.minor * 10
    return f"RuntimeError: The NVIDIA driver on your system is too old (found version {encoded})."


ENVS = st.sampled_from(
    [
        "",
        'File "/home/u/p/.venv/lib/python3.12/site-packages/numba/cuda/dispatcher.py", line 1, in f',
        "(gpu) user@host:~$ python run.py",
        'File "/opt/miniforge/envs/ml/lib/python3.11/site-packages/torch/cuda/__init__.py", line 2',
    ]
)


def _named(fixes: tuple[str, ...]) -> list[CudaVersion]:
    found = []
    for match in _PINNED.finditer("\n".join(fixes)):
        found.append(
            CudaVersion.parse(match.group(1))
            if match.group(1)
            else CudaVersion(major=int(match.group(2)), minor=int(match.group(3)))
        )
    return found


@settings(max_examples=10_000, deadline=None)
@given(case=driver_lines().flatmap(lambda d: st.tuples(st.just(d), errors(d[1]))), env=ENVS, order=st.booleans())
def test_explanations_keep_the_rules(case: tuple[tuple[str, CudaVersion], str], env: str, order: bool) -> None:
    (smi, cuda), error = case
    parts = [env, smi, error] if order else [env, error, smi]
    paste = "\n".join(p for p in parts if p)
    expl = explain(paste)
    assert expl.facts is not None and expl.facts.driver_cuda == str(cuda), (paste, expl.facts.driver_cuda)
    assert all(v <= cuda for v in _named(expl.fixes)), (paste, expl.fixes)
    if expl.newer != "toolkit":
        assert not any("upgrade the NVIDIA driver" in fix for fix in expl.fixes), (paste, expl.fixes)
    if ".venv/" in env and expl.component != "solver":  # a conda solver's message means conda is in use
        assert not any("conda install" in fix for fix in expl.fixes), (paste, expl.fixes)
    if expl.family in LOOKALIKES or expl.family == "loader_803":
        assert not any("cuda-version" in f or "conda install" in f or "upgrade the NVIDIA" in f for f in expl.fixes)
    lines = paste.splitlines()
    for fact in expl.facts.items:
        assert fact.line is not None and lines[fact.line - 1].strip()[:300] == fact.text
