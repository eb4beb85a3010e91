"""80 real public reports (tests/corpus/reports.yaml): the diagnosis and the first fix of each.

The expectations in the corpus were written by reading each report (its URL is the source), not from
condafix's output: the family, the component that refused, the culprit, the kind of the first fix and,
where the report states the driver's CUDA, the newest CUDA any printed pin may name. Explain runs without
live detection (``--no-detect`` semantics), as for a paste from another machine.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from condafix.diagnose.explain import explain
from condafix.diagnose.families import LOOKALIKES
from condafix.knowledge.cuda import CudaVersion

CORPUS = Path(__file__).resolve().parent / "corpus" / "reports.yaml"
CASES: list[dict[str, Any]] = yaml.safe_load(CORPUS.read_text(encoding="utf-8"))["cases"]
# every CUDA a fix can name: conda pins, pip local versions (+cu121), cupy-cuda12x, nvidia wheels ==12.4.*
_NAMED = re.compile(
    r"(?:cuda-version|cudatoolkit|pytorch-cuda|cuda-nvcc|libnvjitlink|cuda-compat)=(\d{1,2}\.\d{1,2})"
    r"|\+cu(\d{2})(\d)\b|=={1,2}(\d{1,2}\.\d{1,2})\.\*"
)


def _named(fixes: tuple[str, ...]) -> list[CudaVersion]:
    found = []
    for match in _NAMED.finditer(" ".join(fixes)):
        if match.group(1) or match.group(4):
            found.append(CudaVersion.parse(match.group(1) or match.group(4)))
        else:
            found.append(CudaVersion(major=int(match.group(2)), minor=int(match.group(3))))
    return found


def _ids(case: dict[str, Any]) -> str:
    return str(case["id"])


def test_the_corpus_is_what_the_issue_asks_for() -> None:
    """>= 60 real reports with their URL, every family with cases, >= 10 look-alikes; no tokens in URLs."""
    assert len(CASES) >= 60
    assert len({c["id"] for c in CASES}) == len(CASES)
    for case in CASES:
        assert re.fullmatch(r"https://github\.com/[\w.\-]+/[\w.\-]+/(?:issues|pull)/\d+", case["source"]), case["id"]
        assert case["text"].strip() and case["summary"].strip()
    families = Counter(c["family"] for c in CASES)
    needed = {
        "ptx_version", "unsupported_ptx", "ptxas_old", "ptxas_arch", "triton_ptx_table", "xla_ptxas_newer",
        "nvrtc_arch", "nvcc_arch", "nvjitlink_outdated", "runtime_insufficient", "bindings_major", "no_kernel_image",
        "gpu_dropped",
        "loader_803", "compat_804", "library_skew", "pixi_no_cuda", "pixi_virtual_missing", "build_glob",
        "solver_conflict", "solver_cuda",
    }  # fmt: skip
    assert needed <= set(families), needed - set(families)
    assert sum(1 for c in CASES if c["family"] in LOOKALIKES) >= 10


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_diagnosis(case: dict[str, Any]) -> None:
    expl = explain(case["text"])
    got = (expl.family, expl.component, expl.culprit)
    assert got == (case["family"], case["component"], case["culprit"]), case["source"]


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_first_fix(case: dict[str, Any]) -> None:
    expl = explain(case["text"])
    assert expl.fixes, case["source"]
    assert expl.fix_kind == case["fix"], (case["source"], expl.fixes[0])
    first = expl.fixes[0]
    if case["fix"] == "info":
        assert first.startswith("not enough information") and "`" in first  # names the exact command to run
    if "pin" in case:
        pins = _named(expl.fixes[:3])
        assert pins and max(pins) == CudaVersion.parse(case["pin"]), expl.fixes
    if "max_cuda" in case:
        limit = CudaVersion.parse(case["max_cuda"])
        assert all(v <= limit for v in _named(expl.fixes)), expl.fixes
    if case["fix"] in ("none", "loader", "spec", "manifest", "override", "path"):
        joined = "\n".join(expl.fixes)
        assert "cuda-version=" not in joined and "cudatoolkit=" not in joined, expl.fixes
    if case["fix"] == "none" or case["culprit"] in ("loader", "library", "spec", "bindings", "triton", "ptxas"):
        assert not any("upgrade the NVIDIA driver" in fix for fix in expl.fixes), expl.fixes


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_every_number_has_its_source(case: dict[str, Any]) -> None:
    """Each fact names the line it came from, and that line of the paste holds the text it was read from."""
    expl = explain(case["text"])
    assert expl.facts is not None
    lines = case["text"].splitlines()
    for fact in expl.facts.items:
        assert fact.source and fact.line is not None
        assert lines[fact.line - 1].strip()[:300] == fact.text
