"""One CUDA group per file: which specs carry CUDA, what CUDA each admits, and the one pin they move to.

Which names are which kind is the one role table (``data/package_roles.json``, ``knowledge.roles``);
their versions, releases and build-string forms live in ``data/cuda_groups.json`` (with sources).
``decide`` is pure: it takes the file's dependencies as written, the target CUDA and optional channel
look-ups, and returns which specs change and how, or why the file is refused. Environment files and
pixi manifests share it.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from condafix.knowledge import roles
from condafix.knowledge.cuda import CudaVersion, data_text, knowledge
from condafix.knowledge.roles import Kind

Status = Literal["ok", "change", "refused"]
Records = Sequence[tuple[str, str, tuple[str, ...]]]  # (version, build, depends) from a channel
Lookup = Callable[[str], Records]
Check = Callable[[CudaVersion, dict[int, "Move"], "tuple[str, str] | None"], "str | None"]

ANCHOR_ORDER = ("cuda-version", "cudatoolkit", "cudatoolkit-dev", "pytorch-cuda")
_VERSION_HEAD = re.compile(r"^(?:==|=|~=)?\s*(\d+)(?:\.(\d+|\*))?(?:\.(\d+|\*))?(?:\.\d+)*(?:\.\*)?$")
_FIRST_VERSION = re.compile(r"\d+(?:\.\d+)*")


@dataclass(frozen=True, kw_only=True)
class Tables:
    """data/cuda_groups.json, validated at load time."""

    anchors: dict[str, tuple[Kind, tuple[str, ...]]]
    metapackages: frozenset[str]
    releases: tuple[str, ...]
    components_from: CudaVersion
    framework: dict[tuple[str, str], tuple[str, tuple[CudaVersion, ...]]]
    framework_channel: str
    sources: dict[str, str]


@functools.cache
def tables() -> Tables:
    """Load the group table once per process."""
    raw: dict[str, Any] = json.loads(data_text("cuda_groups.json"))
    kinds = roles.table().anchors
    anchors = {row["name"]: (kinds[row["name"]], tuple(row["versions"])) for row in raw["anchors"]["rows"]}
    framework = {
        (row["name"], row["version"]): (row["via"], tuple(CudaVersion.parse(c) for c in row["cuda"]))
        for row in raw["framework_builds"]["rows"]
    }
    sources = {key: value["source"] for key, value in raw.items() if isinstance(value, dict) and "source" in value}
    return Tables(
        anchors=anchors,
        metapackages=roles.table().metapackages,
        releases=tuple(raw["metapackages"]["releases"]),
        components_from=CudaVersion.parse(raw["components"]["conda_forge_from"]),
        framework=framework,
        framework_channel=raw["framework_builds"]["channel"],
        sources=sources,
    )


def build_cuda(build: str) -> tuple[CudaVersion, roles.BuildCuda] | None:
    """The CUDA a build string names (``*cuda112*`` -> 11.2, ``py3.9_cuda11.3_*`` -> 11.3), read by the
    one build-string parser (``knowledge.roles.build_cuda``), with where it stands in the text."""
    found = roles.build_cuda(build)
    return (CudaVersion.parse(found.cuda), found) if found else None


def kind_of(name: str, build: str = "") -> Kind | None:
    """Which part of the CUDA group a package is, or None when it carries no CUDA: the name's kind from
    the one role table (``knowledge.roles``), where a build string naming a CUDA outranks all but the
    anchors and metapackages, and any ``cuda`` in a build makes a consumer."""
    kind = roles.name_kind(name)
    if kind in ("pin", "toolkit", "pytorch-cuda", "metapackage"):
        return kind
    if build and build_cuda(build):
        return "build"
    if kind is not None:
        return kind
    return "consumer" if build and "cuda" in build.lower() else None


def cuda_of_record(name: str, version: str, build: str) -> CudaVersion | None:
    """The CUDA of one locked package record, when its name or build tells it."""
    kind = kind_of(name, build)
    try:
        if kind in ("pin", "toolkit", "pytorch-cuda", "metapackage", "component"):
            return CudaVersion.parse(version)
    except Exception:
        return None
    found = build_cuda(build) if build else None
    return found[0] if found else None


@dataclass(frozen=True, kw_only=True)
class Item:
    """One conda dependency as written: the version and build text in the user's own style."""

    name: str
    version: str  # e.g. "=12.9", ">=12.0,<=12.9", "12.9.*", "" (unpinned)
    build: str  # e.g. "*cuda113*", ""
    normalized: str | None  # rattler's version spec for it ("12.9.*"), None when unpinned


@dataclass(frozen=True, kw_only=True)
class Move:
    """The new version/build text of one item (None: that part stays) and why."""

    version: str | None
    build: str | None
    reason: str


@dataclass(frozen=True, kw_only=True)
class Decision:
    status: Status
    cuda: CudaVersion | None
    moves: dict[int, Move]
    add: tuple[str, str] | None  # (name, CUDA) of a pin line to add
    reason: str
    checked: str
    attempts: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()


def _matches(spec: str, version: str) -> bool:
    from condafix.backends.rattler.grammar import version_matches

    return version_matches(spec, version)


def _exact(text: str) -> CudaVersion | set[int] | None:
    """An exact or fuzzy pin's CUDA (``=12.9``, ``==11.8.86``, ``12.9.*``); a set of majors for ``12.*``."""
    found = _VERSION_HEAD.match(text.strip().replace(" ", ""))
    if not found:
        return None
    if found.group(2) in (None, "*"):
        return {int(found.group(1))}
    return CudaVersion(major=int(found.group(1)), minor=int(found.group(2)))


def _universe() -> tuple[CudaVersion, ...]:
    return knowledge().toolkit_releases


def _full_versions(name: str, cuda: CudaVersion) -> list[str]:
    t = tables()
    pool: Sequence[str] = t.releases if name in t.metapackages else t.anchors.get(name, ("pin", ()))[1]
    return [v for v in pool if CudaVersion.parse(v) == cuda]


def admitted(item: Item, kind: Kind, lookup: Lookup | None) -> frozenset[CudaVersion] | None:
    """CUDA minors this item as written accepts; None when it does not constrain CUDA."""
    universe = _universe()
    if kind == "build":
        found = build_cuda(item.build)
        return frozenset({found[0]}) if found else None
    if kind == "consumer" or not item.normalized or item.normalized == "*":
        return None
    if kind == "library":
        if lookup is None:
            return None
        tied: set[CudaVersion] = set()
        for version, _build, depends in lookup(item.name):
            if _matches(item.normalized, version):
                tied |= {c for c in universe if _record_admits(depends, c)}
        return frozenset(tied)
    if kind == "major":
        return frozenset(c for c in universe if any(_matches(item.normalized, f"{c.major}.{m}.99") for m in range(10)))
    exact = _exact(item.version)
    if isinstance(exact, CudaVersion):
        return frozenset({exact})
    if isinstance(exact, set):
        return frozenset(c for c in universe if c.major in exact)
    probes = {c: [f"{c}", f"{c}.0", f"{c}.0.0", f"{c}.9999", *_full_versions(item.name, c)] for c in universe}
    return frozenset(c for c, versions in probes.items() if any(_matches(item.normalized, v) for v in versions))


def _record_admits(depends: Sequence[str], cuda: CudaVersion) -> bool:
    """A CTK library record ties itself to CUDA through ``cuda-version >=X.Y,<X.(Y+1)``."""
    for dep in depends:
        parts = dep.split(None, 1)
        if parts and parts[0] == "cuda-version":
            return len(parts) == 1 or _matches(parts[1], str(cuda))
    return False


def restyle(written: str, pin: str) -> str:
    """``written`` (the user's constraint) rewritten to ``pin`` in the same style."""
    text = written.strip()
    if not text:
        return f"={pin}"
    if text.startswith((">", "<")) or "," in text:
        major = pin.split(".")[0]
        low_match = re.search(r">=?\s*(\d+(?:\.\d+)*)", text)
        low = low_match.group(1) if low_match else f"{major}.0"
        if _key(low) > _key(pin) or low.split(".")[0] != major:
            low = f"{major}.0"
        if re.search(r"<(?!=)", text):
            parts = pin.split(".")
            return f">={low},<{parts[0]}.{int(parts[1]) + 1}"
        return f">={low},<={pin}"
    for operator in ("==", "=", "~="):
        if text.startswith(operator):
            rest = text[len(operator) :].strip()
            return f"{operator}{pin}{'.*' if rest.endswith('.*') else ''}"
    return f"{pin}.*" if text.endswith(".*") else pin


def _key(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", version))


def precision(written: str) -> int:
    """How many version parts the user wrote (``=11.8.86`` -> 3, ``>=12.0,<13`` -> 2)."""
    found = _FIRST_VERSION.search(written)
    return len(found.group(0).split(".")) if found else 2


class _Planner:
    """Everything ``decide`` needs for one file; methods answer 'can this item say CUDA C?'."""

    def __init__(self, items: Sequence[Item], lookup: Lookup | None, channels: Sequence[str]) -> None:
        self.items = items
        self.lookup = lookup
        self.channels = channels
        self.kinds = {i: k for i, item in enumerate(items) if (k := kind_of(item.name, item.build))}

    def rewrite(self, index: int, cuda: CudaVersion) -> Move | str:
        """The item's text for CUDA ``cuda``, or why it cannot say it."""
        item, kind = self.items[index], self.kinds[index]
        t = tables()
        label = _label(item)
        if kind == "build":
            return self._rewrite_build(item, cuda, label)
        if kind == "major":
            return f"`{label}` ties the file to another CUDA major than {cuda}"
        if kind in ("pin", "toolkit", "pytorch-cuda"):
            known = t.anchors[item.name][1]
            fulls = [v for v in known if CudaVersion.parse(v) == cuda]
            if not fulls:
                newest = max((CudaVersion.parse(v) for v in known), default=None)
                if kind == "toolkit" and newest and cuda > newest:
                    return f"`{item.name}` ends at {newest}: there is no {item.name} for CUDA {cuda}"
                return f"no `{item.name}` exists for CUDA {cuda}"
            full = max(fulls, key=_key)
            pin = full if precision(item.version) >= 3 and full.count(".") >= 2 else str(cuda)
            return Move(
                version=restyle(item.version, pin),
                build=None,
                reason=f"{item.name} moves with the group to CUDA {cuda}",
            )
        if kind == "metapackage":
            fulls = [v for v in t.releases if CudaVersion.parse(v) == cuda]
            if cuda.major < 12:
                return f"the `{item.name}` metapackage does not exist before CUDA 12 (no CUDA {cuda} release)"
            if not fulls:
                return f"no `{item.name}` release exists for CUDA {cuda}"
            pin = max(fulls, key=_key) if precision(item.version) >= 3 else str(cuda)
            return Move(
                version=restyle(item.version, pin), build=None, reason=f"{item.name} is the full toolkit release: {pin}"
            )
        if kind == "component":
            return self._rewrite_component(item, cuda)
        if kind == "library":
            return self._rewrite_library(item, cuda)
        return Move(version=None, build=None, reason="")

    def _rewrite_component(self, item: Item, cuda: CudaVersion) -> Move | str:
        if self.lookup is not None:
            versions = [v for v, _b, _d in self.lookup(item.name) if _same_minor(v, cuda)]
            if not versions:
                return f"no `{item.name}` for CUDA {cuda} on the channel"
            full = max(versions, key=_key)
            pin = full if precision(item.version) >= 3 else str(cuda)
            return Move(
                version=restyle(item.version, pin),
                build=None,
                reason=f"{item.name} moves with the group to CUDA {cuda}",
            )
        note = f"{item.name} moves with the group to CUDA {cuda}"
        if precision(item.version) >= 3:
            note += f" (its patch release for {cuda} is not in condafix's tables: any {cuda} build)"
        if cuda < tables().components_from:
            note += "; CUDA 11 split packages come from the nvidia channel, not checked offline"
        return Move(version=restyle(item.version, str(cuda)), build=None, reason=note)

    def _rewrite_library(self, item: Item, cuda: CudaVersion) -> Move | str:
        if self.lookup is None:
            return (
                f"`{item.name}{item.version}`: its version does not name the CUDA release, and which "
                f"{item.name} belongs to CUDA {cuda} is only known from the channel (run without --offline)"
            )
        fits = [v for v, _b, depends in self.lookup(item.name) if _record_admits(depends, cuda)]
        if not fits:
            return f"no `{item.name}` built for CUDA {cuda} on the channel"
        full = max(fits, key=_key)
        return Move(
            version=restyle(item.version, full),
            build=None,
            reason=f"{item.name} {full} is the CUDA {cuda} build on the channel",
        )

    def _rewrite_build(self, item: Item, cuda: CudaVersion, label: str) -> Move | str:
        found = build_cuda(item.build)
        if found is None:
            return Move(version=None, build=None, reason="")
        _old, where = found
        token = where.form.format(major=cuda.major, minor=cuda.minor)
        new_build = item.build[: where.start] + token + item.build[where.end :]
        if self.lookup is not None:
            ok = any(
                token in build and (not item.normalized or _matches(item.normalized, version))
                for version, build, _d in self.lookup(item.name)
            )
            if not ok:
                return f"`{label}`: no {item.name} build for CUDA {cuda} on the channel"
            return Move(version=None, build=new_build, reason=f"{item.name} build moves with the group to CUDA {cuda}")
        row = self._framework_row(item)
        if row is None or cuda not in row[1]:
            return (
                f"`{label}` pins a CUDA {found[0]} build; whether a CUDA {cuda} build exists is only known "
                "from the channel (run without --offline)"
            )
        return Move(version=None, build=new_build, reason=f"{item.name} build moves with the group to CUDA {cuda}")

    def _framework_row(self, item: Item) -> tuple[str, tuple[CudaVersion, ...]] | None:
        if tables().framework_channel not in self.channels or not item.normalized:
            return None
        rows = [(v, row) for (name, v), row in tables().framework.items() if name == item.name]
        fits = [row for v, row in rows if _matches(item.normalized, v)]
        return fits[0] if len(fits) == 1 or (fits and all(r == fits[0] for r in fits)) else None

    def framework_limits(self, cuda: CudaVersion) -> str | None:
        """Offline: a framework pin (pytorch=1.12.1 from the pytorch channel) that has no CUDA ``cuda`` build."""
        names = {self.items[i].name for i in self.kinds}
        for item in self.items:
            row = self._framework_row(item)
            if row is None or row[0] not in names or cuda in row[1]:
                continue
            have = ", ".join(str(c) for c in row[1])
            return f"{item.name}{item.version} was built for {row[0]} {have} only (no CUDA {cuda} build)"
        return None


def _same_minor(version: str, cuda: CudaVersion) -> bool:
    try:
        return CudaVersion.parse(version) == cuda
    except Exception:
        return False


def _label(item: Item) -> str:
    sep = "" if item.version[:1] in ("", "=", "<", ">", "!", "~") else " "
    return f"{item.name}{sep}{item.version}{'=' + item.build if item.build else ''}"


def _describe(versions: frozenset[CudaVersion]) -> str:
    low, high = min(versions), max(versions)
    return f"CUDA {low}" if low == high else f"CUDA {low}..{high}"


def decide(
    items: Sequence[Item],
    target: CudaVersion,
    *,
    allow_major: bool = False,
    lookup: Lookup | None = None,
    check: Check | None = None,
    channels: Sequence[str] = (),
    pin_style: str = "={}",
) -> Decision:
    """The smallest change that puts every CUDA-bearing item on one CUDA <= target, or why not."""
    plan = _Planner(items, lookup, channels)
    if not plan.kinds:
        return Decision(
            status="ok",
            cuda=None,
            moves={},
            add=None,
            reason="no CUDA package in this file: nothing to change",
            checked="not needed",
        )
    sets = {i: admitted(items[i], k, lookup) for i, k in plan.kinds.items()}
    constrained = {i: s for i, s in sets.items() if s is not None}
    bounding = {i: s for i, s in constrained.items() if plan.kinds[i] != "major"}
    universe = frozenset(_universe())
    family = universe
    if any(items[i].name in ("cudatoolkit", "cudatoolkit-dev") for i in plan.kinds):
        family = frozenset(c for c in family if c <= CudaVersion(major=11, minor=8))
    if any(k == "metapackage" for k in plan.kinds.values()):
        family = frozenset(c for c in family if c.major >= 12)
    split = [i for i, k in plan.kinds.items() if k in ("component", "library")]
    if split and "nvidia" not in channels:  # conda-forge splits the toolkit from CUDA 12.0 on
        family = frozenset(c for c in family if c >= tables().components_from)
    allowed = universe
    for s in constrained.values():
        allowed &= s
    if constrained and not allowed:
        said = "; ".join(
            f"`{_label(items[i])}` ({_describe(s) if s else 'no known CUDA'})" for i, s in constrained.items()
        )
        return Decision(
            status="refused",
            cuda=None,
            moves={},
            add=None,
            reason=f"the file's CUDA pins contradict each other: {said}",
            checked="not needed",
        )
    if bounding and max(allowed) <= target:
        where = _describe(allowed)
        return Decision(
            status="ok",
            cuda=None,
            moves={},
            add=None,
            reason=f"the CUDA group ({where}) fits a CUDA {target} driver",
            checked="not needed",
        )
    base = (allowed if bounding else universe) & family
    fit = sorted((c for c in base if c <= target), reverse=True)
    notes: list[str] = []
    if not fit:
        same = [c for c in base if c.major == target.major]
        higher = [c for c in base if c.major > target.major]
        if higher and not same:
            need = knowledge().min_driver_for(min(higher))
            names = ", ".join(f"`{_label(items[i])}`" for i in bounding)
            if not names:
                names = ", ".join(f"`{items[i].name}`" for i in split) + ": split CUDA packages on conda-forge"
            asks = f"asks for {_describe(frozenset(higher))}" if bounding else f"needs CUDA >= {min(higher)}"
            if not allow_major:
                return Decision(
                    status="refused",
                    cuda=None,
                    moves={},
                    add=None,
                    reason=f"the file {asks} ({names}) and the driver supports CUDA "
                    f"{target}: moving it to CUDA {target.major} crosses a major, which changes every CUDA package "
                    f"and the frameworks built on them; upgrade the driver to >= {need} instead, or pass "
                    "--allow-major to move the whole group to CUDA "
                    f"{target.major}",
                    checked="not needed",
                )
            moved = _describe(frozenset(higher))
            notes.append(f"--allow-major: the group moves from {moved} down to CUDA {target.major}")
        fit = sorted((c for c in universe & family if c.major == target.major and c <= target), reverse=True)
        if not fit:
            kinds = sorted({items[i].name for i, k in plan.kinds.items() if k == "metapackage"})
            why = f"no CUDA {target.major}.x release fits this file's packages"
            if kinds:
                why = f"the {', '.join(kinds)} metapackage does not exist before CUDA 12"
            return Decision(
                status="refused",
                cuda=None,
                moves={},
                add=None,
                reason=f"{why}; change the file by hand",
                checked="not needed",
            )
    attempts: list[str] = []
    for cuda in fit:
        moves: dict[int, Move] = {}
        failed: str | None = None
        for i in plan.kinds:
            have = sets[i]
            needs = have is not None and (cuda not in have or (plan.kinds[i] != "major" and max(have) > target))
            if plan.kinds[i] == "library" and have is None and items[i].normalized:
                needs = True  # offline: its CUDA is unknown, so it cannot be kept beside a moved group
            if not needs:
                continue
            move = plan.rewrite(i, cuda)
            if isinstance(move, str):
                failed = move if failed is None else f"{failed}; {move}"
            elif move.version is not None or move.build is not None:
                moves[i] = move
        if failed is None and lookup is None:
            failed = plan.framework_limits(cuda)
        add: tuple[str, str] | None = None
        if failed is None and not bounding:
            anchor = next(
                (i for name in ANCHOR_ORDER for i in plan.kinds if items[i].name == name and not items[i].normalized),
                None,
            )
            if anchor is not None:
                move = plan.rewrite(anchor, cuda)
                if isinstance(move, str):
                    failed = move
                else:
                    text = pin_style.format(cuda) if move.version else None
                    moves[anchor] = Move(
                        version=text, build=None, reason=f"unpinned {items[anchor].name}: pinned to CUDA {cuda}"
                    )
            elif cuda not in frozenset(CudaVersion.parse(v) for v in tables().anchors["cuda-version"][1]):
                failed = f"no cuda-version {cuda}"
            else:
                add = ("cuda-version", str(cuda))
        if failed is None and check is not None:
            failed = check(cuda, moves, add)
        if failed is not None:
            attempts.append(f"CUDA {cuda}: {failed}")
            continue
        checked = (
            "checked on the channel: the file's specs solve with it"
            if check is not None
            else "offline: chosen from condafix's tables, not checked on a channel"
        )
        why = f"every CUDA package of the file moves together to CUDA {cuda} (<= the driver's {target})"
        return Decision(
            status="change",
            cuda=cuda,
            moves=moves,
            add=add,
            reason=why,
            checked=checked,
            attempts=tuple(attempts),
            notes=tuple(notes),
        )
    first = attempts[0].split(": ", 1)[1] if attempts else "no candidate"
    why = f"no CUDA <= {target} fits every CUDA package of the file: {first}"
    if len(attempts) > 1:
        why += f" (and {len(attempts) - 1} lower CUDA versions fail too)"
    return Decision(
        status="refused",
        cuda=None,
        moves={},
        add=None,
        reason=why,
        checked="not needed",
        attempts=tuple(attempts),
        notes=tuple(notes),
    )
