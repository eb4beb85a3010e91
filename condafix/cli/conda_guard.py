"""The post-solve guard and the hints for conda's ``__cuda`` errors: conda's final link set is checked
with the same rule as ``condafix doctor`` (``cli.commands.guard_transaction``) before conda links it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from condafix.knowledge.pinrule import CudaRequirement

GUARD_SETTING = "condafix_cuda_guard"
GUARD_MODES = ("warn", "error", "off")


def _guard_mode() -> str:
    from conda.base.context import context

    mode = str(getattr(context.plugins, GUARD_SETTING, "warn") or "warn").strip().lower()
    return mode if mode in GUARD_MODES else "warn"


def _virtual_cuda() -> str | None:
    from conda.base.context import context

    for record in context.plugin_manager.get_virtual_package_records():
        if record.name == "__cuda":
            return str(record.version)
    return None


def post_solve(repodata_fn: str, unlink_precs: Iterable[Any], link_precs: Iterable[Any]) -> None:
    """Warn (or refuse) before linking a cuda-version/cudatoolkit minor above ``__cuda`` for a JIT user."""
    mode = _guard_mode()
    if mode == "off":
        return
    links = list(link_precs)
    if not any(str(r.name) in ("cuda-version", "cudatoolkit") for r in links):
        return
    cuda = _virtual_cuda()
    if not cuda:
        return
    from conda.base.context import context

    from condafix.cli import commands

    final, requirements = final_state(str(context.target_prefix), unlink_precs, links)
    finding = commands.guard_transaction(final, cuda, requirements)
    if finding is None:
        return
    if mode == "error":
        from conda.exceptions import CondaError

        hints = "\n".join(h.text for h in finding.hints)
        raise CondaError(f"{finding.message}\n{hints}  (setting {GUARD_SETTING}: error)")
    from condafix.cli import render

    render.guard_warning(finding)


def final_state(
    prefix: str, unlink_precs: Iterable[Any], link_precs: Iterable[Any]
) -> tuple[dict[str, str], list[CudaRequirement]]:
    """The env after the transaction as conda's records say (name -> version), with each record's own
    depends/constrains on the CUDA family: the guard names a package that holds the pin from these."""
    from conda.core.prefix_data import PrefixData

    from condafix.knowledge.pinrule import requirements_of

    links = list(link_precs)
    gone = {str(r.name) for r in unlink_precs} | {str(r.name) for r in links}
    kept: list[Any] = []
    try:
        kept = [r for r in PrefixData(prefix).iter_records() if str(r.name) not in gone]
    except Exception:  # a new env has no prefix yet; the link set is the final state
        kept = []
    records = kept + links
    requirements = [
        req
        for r in records
        for req in requirements_of(
            str(r.name),
            str(r.version),
            str(r.build),
            [str(d) for d in getattr(r, "depends", ()) or ()],
            [str(c) for c in getattr(r, "constrains", ()) or ()],
        )
    ]
    return {str(r.name): str(r.version) for r in records}, requirements


def error_hints(error: Any) -> list[tuple[str, str]]:
    """(code, text) hints for a conda error about ``__cuda``; none for the guard's own refusal."""
    text = str(error)
    if "__cuda" not in text or GUARD_SETTING in text:
        return []
    from condafix.cli import commands

    return commands.cuda_error_hints(text)
