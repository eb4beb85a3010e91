"""conda's post-solve guard: a transaction's final state against the driver's ``__cuda``, judged with the
rules ``condafix doctor`` uses (who hands PTX to the driver's JIT; the one pin rule, ``knowledge.pinrule``),
so the guard, doctor and ``condafix cuda`` give the same advice."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from condafix.diagnose import compilepath
from condafix.errors import Hint, UsageError
from condafix.findings import Finding
from condafix.knowledge import pinrule, roles
from condafix.knowledge.cuda import CudaVersion, pins_for
from condafix.knowledge.pinrule import CudaRequirement


def _cuda_of(final: Mapping[str, str]) -> tuple[str, CudaVersion] | None:
    for family in ("cuda-version", "cudatoolkit"):
        if family in final:
            try:
                return family, CudaVersion.parse(final[family])
            except UsageError:
                return None
    return None


def guard_transaction(
    final: Mapping[str, str], cuda: str, requirements: Sequence[CudaRequirement] = ()
) -> Finding | None:
    """A final state (name -> version) against ``__cuda``: a toolkit minor above the driver is only a
    problem for a package that hands PTX to the driver's JIT (see ``compilepath``). ``requirements``: the
    final records' own depends/constrains on the CUDA family; a package that rules out the driver's pin is
    named (the one rule: ``knowledge.pinrule``), never advised over."""
    found = _cuda_of(final)
    try:
        driver = CudaVersion.parse(cuda)
    except UsageError:
        return None
    if found is None or found[1] <= driver:
        return None
    family, toolkit = found
    users = compilepath.driver_jit_users(final)
    if not users:
        return None
    upgrade = pinrule.driver_for(toolkit)
    if toolkit.major > driver.major:  # SASS of CUDA X never runs on a driver of an older major
        hint = Hint(code="driver", text=f"{upgrade}; moving the env to CUDA {driver.major} replaces every CUDA package")
    else:
        pins = pins_for(driver, final.keys())
        held = [
            h
            for pin in pins
            for h in pinrule.holders(
                [r for r in requirements if r.name in final],
                pin.partition("=")[0],
                CudaVersion.parse(pin.partition("=")[2]),
                pinrule.table_versions(pin.partition("=")[0]),
                skip=roles.moves_with_pin,
            )
        ]
        quoted = " ".join(f'"{p}"' for p in pins)
        if held:
            hint = Hint(
                code="held", text=f"{pinrule.held_text(held, ' '.join(pins))}; {upgrade} and keep the env as it is"
            )
        elif pins:
            hint = Hint(
                code="pin", text=f"add {quoted} to the command (or run `conda cuda` / `condafix cuda` afterwards)"
            )
        else:
            hint = Hint(code="driver", text=f"conda-forge has no CUDA {driver.major}.x <= {driver}: {upgrade}")
    return Finding(
        code="toolkit_newer_than_driver",
        severity="error",
        message=(
            f"this transaction links {family} {final[family]} (CUDA {toolkit}), newer than the driver's "
            f"__cuda {driver}; {', '.join(users)} {'hands' if len(users) == 1 else 'hand'} PTX to the driver's JIT, "
            "which will refuse it "
            "(CUDA_ERROR_UNSUPPORTED_PTX_VERSION)"
        ),
        hints=(hint,),
        component=family,
    )
