"""The one rule about packages that hold the env's CUDA pin, shared by doctor, conda's guard, the planner
(and explain): an installed package whose own ``depends``/``constrains`` on ``cuda-version`` or
``cudatoolkit`` rules out the pin the driver needs (pytorch 2.9.0 needs ``cuda-version >=12.8,<13``).

Why one place: doctor said "move the env's CUDA down … nothing else changes", the guard said "add
cuda-version=12.4" and ``condafix cuda`` said blocked, for the same env. All three now name the same
package and requirement, in the same words (:func:`holder_text`, :func:`held_text`).

Doctor must stay fast, so the version-spec matcher here is pure (:func:`admits`: conda's version
ordering and the spec forms repodata uses); the planner passes the solver's own matcher instead.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import zip_longest
from typing import Literal

from condafix.knowledge.cuda import CudaVersion, knowledge

FAMILIES = ("cuda-version", "cudatoolkit")
Matches = Callable[[str, str, str], bool]


@dataclass(frozen=True, kw_only=True)
class CudaRequirement:
    """One installed record's own requirement on the CUDA family, as conda-meta (or repodata) lists it."""

    name: str
    version: str
    build: str
    spec: str
    field: Literal["depends", "constrains"]


@dataclass(frozen=True, kw_only=True)
class Holder:
    """An installed package whose requirement rules out the pin; ``needs_cuda``: the lowest CUDA it takes
    (from the channel, or conda-forge's table), ``needs_driver``: the driver that runs that CUDA."""

    name: str
    version: str
    build: str
    requirement: str
    needs_cuda: str | None
    needs_driver: str | None


def requirements_of(
    name: str, version: str, build: str, depends: Iterable[object], constrains: Iterable[object]
) -> tuple[CudaRequirement, ...]:
    """The entries of one record that name ``cuda-version`` or ``cudatoolkit`` (with a version)."""
    out: list[CudaRequirement] = []
    for field, specs in (("depends", depends), ("constrains", constrains)):
        for spec in specs:
            if isinstance(spec, str) and spec_family(spec) is not None:
                out.append(CudaRequirement(name=name, version=version, build=build, spec=spec, field=field))  # type: ignore[arg-type]
    return tuple(out)


def spec_family(spec: str) -> str | None:
    """``cuda-version >=12.8,<13`` -> cuda-version; None for other names and for a bare name."""
    parts = spec.strip().split(None, 1)
    if not parts or parts[0] not in FAMILIES or len(parts) < 2:
        return None
    return parts[0]


# ---------------------------------------------------------------- conda's version order, pure


_SPLIT = re.compile(r"\d+|[a-z]+|\*")


def _order(text: str) -> list[list[int | str]]:
    """conda's VersionOrder key: components split at ``.``/``_``/``-``, each into number and letter runs."""
    value = text.strip().lower()
    if "!" in value:
        value = value.split("!", 1)[1]
    value = value.split("+", 1)[0].replace("_", ".").replace("-", ".")
    if not value or not re.fullmatch(r"[0-9a-z.*]+", value):
        raise ValueError(f"not a version: {text!r}")
    out: list[list[int | str]] = []
    for comp in value.split("."):
        runs: list[int | str] = [int(r) if r.isdigit() else r for r in _SPLIT.findall(comp)]
        if not runs:
            raise ValueError(f"not a version: {text!r}")
        if isinstance(runs[0], str):
            runs.insert(0, 0)
        out.append(runs)
    return out


def _cmp(a: str, b: str) -> int:
    """-1/0/1 as conda orders two versions (letters below numbers, except ``post``; padding with 0)."""
    empty: list[int | str] = []
    for ca, cb in zip_longest(_order(a), _order(b), fillvalue=empty):
        for x, y in zip_longest(ca, cb, fillvalue=0):
            if x == y:
                continue
            if isinstance(x, int) and isinstance(y, int):
                return -1 if x < y else 1
            if isinstance(x, str) and isinstance(y, str):
                return -1 if x < y else 1
            text = x if isinstance(x, str) else y
            str_is_bigger = text == "post"
            x_bigger = (isinstance(x, str)) == str_is_bigger
            return 1 if x_bigger else -1
    return 0


def _starts(version: str, prefix: str) -> bool:
    """conda's ``X.Y.*``: the leading components equal (``12.40`` does not start with ``12.4``)."""
    head, tail = _order(version), _order(prefix)
    head += [[0]] * (len(tail) - len(head))
    for i, t in enumerate(tail):
        h = head[i] + [0] * (len(t) - len(head[i]))
        if (h[: len(t)] if i == len(tail) - 1 else h) != t and not (i < len(tail) - 1 and _same(h, t)):
            return False
    return True


def _same(a: list[int | str], b: list[int | str]) -> bool:
    return all(x == y for x, y in zip_longest(a, b, fillvalue=0))


def _term(term: str, version: str) -> bool:
    match = re.fullmatch(r"(>=|<=|==|!=|~=|>|<|=)?\s*([0-9A-Za-z._+!*-]+)", term.strip())
    if not match:
        raise ValueError(f"not a version spec: {term!r}")
    op, value = match.group(1) or "", match.group(2)
    if value == "*":
        return op != "!="
    glob = value.endswith("*")
    base = value.rstrip("*").rstrip(".")
    if op == "=" or (glob and op == ""):
        return _starts(version, base)
    if op == "!=" and glob:
        return not _starts(version, base)
    if glob:  # conda drops ``.*`` after a relation: >=12.* reads as >=12, ==11.0.* as ==11.0
        value = base
    if op == "~=":
        parts = value.split(".")
        return _cmp(version, value) >= 0 and _starts(version, ".".join(parts[:-1]) or value)
    c = _cmp(version, value)
    return {"": c == 0, "==": c == 0, "!=": c != 0, ">=": c >= 0, "<=": c <= 0, ">": c > 0, "<": c < 0}[op]


def version_admits(version_spec: str, version: str) -> bool:
    """Does a conda version spec (``>=12.8,<13``, ``11.3|11.3.*``, ``12.4.*``, ``>=12``) accept ``version``?
    ``,`` binds tighter than ``|``; raise ValueError for what this reader does not know (parentheses)."""
    if "(" in version_spec or ")" in version_spec:
        raise ValueError(f"grouped version spec: {version_spec!r}")
    return any(all(_term(t, version) for t in alt.split(",")) for alt in version_spec.replace(" ", "").split("|"))


def admits(spec: str, family: str, version: str) -> bool:
    """Does a depends/constrains entry accept ``family`` at ``version``? Another name, a bare name or a spec
    this reader cannot read accepts it (it claims no conflict it cannot show)."""
    parts = spec.strip().split(None, 2)
    if len(parts) < 2 or parts[0] != family:
        return True
    try:
        return version_admits(parts[1], version)
    except ValueError:
        return True


# ---------------------------------------------------------------- who holds the pin, and what to say


def holders(
    requirements: Iterable[CudaRequirement],
    family: str,
    pin: CudaVersion,
    versions: Sequence[str],
    matches: Matches = admits,
    skip: Callable[[str], bool] = lambda _name: False,
) -> list[Holder]:
    """Installed packages whose own requirement on ``family`` rules out ``pin``. ``versions``: the family's
    versions to find the lowest each takes (the channel's, or conda-forge's table); ``skip``: names that move
    with the pin (their other builds exist, or their missing build is the channel's, not the env's)."""
    kb = knowledge()
    out: list[Holder] = []
    for req in requirements:
        if skip(req.name) or spec_family(req.spec) != family or matches(req.spec, family, str(pin)):
            continue
        fits = sorted(
            CudaVersion.parse(v) for v in versions if re.match(r"^\d+\.\d+", v) and matches(req.spec, family, v)
        )
        needs = fits[0] if fits else None
        out.append(
            Holder(
                name=req.name,
                version=req.version,
                build=req.build,
                requirement=req.spec,
                needs_cuda=str(needs) if needs else None,
                needs_driver=kb.min_driver_for(needs) if needs else None,
            )
        )
    return list({(h.name, h.requirement): h for h in out}.values())


def table_versions(family: str) -> tuple[str, ...]:
    """conda-forge's versions of the family (the table the doctor checks a pin against)."""
    kb = knowledge()
    if family == "cudatoolkit":
        return tuple(str(CudaVersion.parse(v)) for v in kb.cudatoolkit_versions)
    return tuple(str(v) for v in kb.cuda_version_versions)


def holder_text(holder: Holder) -> str:
    """``pytorch 2.9.0 needs cuda-version >=12.8,<13 (CUDA 12.8: driver >= 570.26)``: the same words everywhere."""
    text = f"{holder.name} {holder.version} needs {holder.requirement}"
    if holder.needs_cuda and holder.needs_driver:
        text += f" (CUDA {holder.needs_cuda}: driver >= {holder.needs_driver})"
    elif holder.needs_cuda:
        text += f" (CUDA {holder.needs_cuda})"
    return text


def held_text(found: Sequence[Holder], pin: str) -> str:
    """The one sentence doctor, the guard and ``condafix cuda`` print when installed packages hold the pin."""
    who = "; ".join(holder_text(h) for h in found)
    names = ", ".join(h.name for h in found)
    return f"{who}: {pin} cannot be installed while {names} {'is' if len(found) == 1 else 'are'} here"


def driver_for(cuda: CudaVersion) -> str:
    """``upgrade the NVIDIA driver to >= 575.51.03 (CUDA 12.9)``, from the driver table."""
    need = knowledge().min_driver_for(cuda)
    return "upgrade the NVIDIA driver" + (f" to >= {need} (CUDA {cuda})" if need else f" (for CUDA {cuda})")
