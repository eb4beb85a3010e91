"""pixi's rich platforms (pixi >= 0.71): ``platforms = [{ platform = "linux-64", cuda = "12.9" }]``.

An entry declares CUDA as ``cuda = "12.9"`` / ``cuda = "12"``, ``cuda = { driver = "12.9", arch = "8.6" }`` or a
raw ``__cuda``; features bind to an entry by its ``name`` or the name pixi synthesizes from it. Moving the
entry's CUDA keeps its form and renames the references that used the synthesized name.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from condafix.files.edits import Edit
from condafix.files.envfile import EnvFileError
from condafix.knowledge.cuda import CudaVersion


@dataclass(frozen=True, kw_only=True)
class RichPlatform:
    """One inline-table entry of ``platforms`` that declares CUDA (pixi >= 0.71)."""

    entry: Any  # the inline table
    holder: Any  # the table holding the version: the entry, or its `cuda = { driver, arch }` table
    key: str  # "cuda", "driver" or "__cuda"
    subdir: str
    where: str  # e.g. "[workspace] platforms"

    @property
    def raw(self) -> str:
        return str(self.holder[self.key])

    @property
    def cuda(self) -> CudaVersion:
        version = self.raw.split("=", 1)[0].strip()  # a raw `__cuda = "12.4=0"` carries a build
        return CudaVersion.parse(version if "." in version else f"{version}.0")

    def shown(self) -> str:
        return f"{self.where}: {self.entry.as_string().strip()}"


_SUBDIR_DEFAULTS = {"linux": {"glibc": "2.28", "linux": "4.18"}, "osx": {"macos": "13.0"}}
_FRIENDLY = ("cuda", "archspec", "glibc", "linux", "macos", "windows")  # pixi's order in synthesized names


def rich_platforms(meta: Any, where: str, name: str) -> list[RichPlatform]:
    """The inline-table entries of ``platforms`` that declare CUDA, in any of pixi's three spellings."""
    out = []
    for entry in meta.get("platforms", []) if isinstance(meta, dict) else []:
        if not isinstance(entry, dict):
            continue
        subdir = str(entry.get("platform") or entry.get("name") or "")
        cuda = entry.get("cuda")
        if isinstance(cuda, str):
            found = RichPlatform(entry=entry, holder=entry, key="cuda", subdir=subdir, where=where)
        elif isinstance(cuda, dict) and isinstance(cuda.get("driver"), str):
            found = RichPlatform(entry=entry, holder=cuda, key="driver", subdir=subdir, where=where)
        elif isinstance(entry.get("__cuda"), str):
            found = RichPlatform(entry=entry, holder=entry, key="__cuda", subdir=subdir, where=where)
        elif cuda is not None or "__cuda" in entry:
            raise EnvFileError(f"{name}: {where}: cuda must be a version or {{ driver = …, arch = … }}")
        else:
            continue
        try:
            found.cuda  # noqa: B018  (validates the version once, here)
        except Exception:
            raise EnvFileError(f"{name}: {where}: cuda = {found.raw!r} is not a CUDA version") from None
        out.append(found)
    return out


def _segment(text: str) -> str:
    return "-".join(part for part in "".join(c if c.isascii() and c.isalnum() else " " for c in text).split())


def synthesized_name(entry: Any) -> str:
    """The name pixi gives an entry without ``name``: its subdir, then each declared virtual package.

    Features refer to a rich platform by this name (``[feature.gpu] platforms = ["linux-64-cuda-12-9"]``),
    so moving its CUDA renames it; the references move with it.
    """
    subdir = str(entry.get("platform") or entry.get("name") or "")
    defaults = _SUBDIR_DEFAULTS.get(subdir.split("-", 1)[0], {})
    values = {k: entry.get("osx" if k == "macos" and "macos" not in entry else k) for k in _FRIENDLY}
    raw = {str(k)[2:]: str(v) for k, v in entry.items() if str(k).startswith("__")}
    cuda = values["cuda"]
    if isinstance(cuda, dict):
        values["cuda"] = cuda.get("driver")
        if cuda.get("arch") is not None:
            raw["cuda_arch"] = str(cuda["arch"])
    if values["cuda"] is None and "cuda" in raw:
        values["cuda"] = raw.pop("cuda")
    parts = [subdir]
    for key in _FRIENDLY:
        value = values[key]
        if value is not None and defaults.get(key) != str(value):
            parts.append(f"{key}-{_segment(str(value))}")
    parts += [f"{_segment(k)}-{_segment(v)}" for k, v in sorted(raw.items())]
    return "-".join(parts)


def bound_platforms(node: Any) -> list[str] | None:
    """The platform names a feature binds to (``[feature.x] platforms = [...]``), or None: all of them."""
    names = node.get("platforms") if isinstance(node, dict) else None
    return [str(n) for n in names] if isinstance(names, list) else None


def applies(platform: RichPlatform, names: list[str] | None) -> bool:
    explicit = platform.entry.get("name")
    return names is None or str(explicit or synthesized_name(platform.entry)) in names


def move_platform(platform: RichPlatform, cuda: CudaVersion, root: Any, prefix: str = "") -> list[Edit]:
    """Lower a rich platform's CUDA to the group's, keeping its form; rename the features' references to it.

    A ``[target.<old name>]`` table is renamed in the text (``rename_targets``): tomlkit has no public rename.
    """
    old_shown, old_name, before = platform.shown(), synthesized_name(platform.entry), platform.cuda
    version, eq, build = platform.raw.partition("=")
    platform.holder[platform.key] = (str(cuda) if "." in version else str(cuda.major)) + eq + build
    edits = [
        Edit(
            line=0,
            old=old_shown,
            new=platform.shown(),
            reason=f"the platform's __cuda moves with the group to CUDA {cuda} ({pixi_words(before, cuda)})",
        )
    ]
    new_name = synthesized_name(platform.entry)
    if platform.entry.get("name") or new_name == old_name:
        return edits
    features = root.get("feature") if isinstance(root, dict) else None
    for where, node in [("", root), *((f"feature.{f}.", n) for f, n in (features or {}).items())]:
        targets = node.get("target") if isinstance(node, dict) else None
        if isinstance(targets, dict) and old_name in targets:  # `[target.<name>]` selects that platform only
            said = f"[{prefix}{where}target.{old_name}]"
            new = f"[{prefix}{where}target.{new_name}]"
            edits.append(Edit(line=0, old=said, new=new, reason="follows the renamed platform"))
    for feature, node in (features if isinstance(features, dict) else {}).items():
        names = node.get("platforms") if isinstance(node, dict) else None
        if not isinstance(names, list):
            continue
        for index, value in enumerate(names):
            if str(value) == old_name:
                names[index] = new_name
                table = f"[{prefix}feature.{feature}] platforms"
                said, new = f"{table}: {old_name!r}", f"{table}: {new_name!r}"
                edits.append(Edit(line=0, old=said, new=new, reason="follows the renamed platform"))
    return edits


@dataclass(frozen=True, kw_only=True)
class DeclaredPlatform:
    """A platform as pixi names it: a workspace entry, or one pixi migrates from ``[system-requirements]``."""

    name: str
    subdir: str
    cuda: CudaVersion | None  # the __cuda it is solved with; None: no __cuda
    identity: frozenset[tuple[str, str]] = frozenset()  # its virtual packages beyond the subdir's defaults


_ARCHSPEC = {"64": "x86_64", "aarch64": "aarch64", "arm64": "m1", "ppc64le": "ppc64le"}
_FRIENDLY_OF = {"__cuda": "cuda", "__cuda_arch": "cuda_arch", "__archspec": "archspec", "__glibc": "glibc"}
_FRIENDLY_OF |= {"__linux": "linux", "__osx": "macos", "__win": "windows"}


def _norm(version: str) -> str:
    """``12.0`` and ``12`` are one conda version: the identity compares them alike."""
    parts = version.strip().split(".")
    while len(parts) > 1 and parts[-1] == "0":
        parts.pop()
    return ".".join(parts)


def identity(subdir: str, packages: dict[str, str]) -> frozenset[tuple[str, str]]:
    """A platform's identity as pixi matches lock entries to the manifest (``platform_rename.rs``): its
    virtual packages (friendly keys: ``cuda``, ``cuda_arch``, ``glibc``, …) minus the subdir's defaults."""
    family, _, arch = subdir.partition("-")
    defaults = {**_SUBDIR_DEFAULTS.get(family, {}), "windows": "10", "archspec": _ARCHSPEC.get(arch, "")}
    return frozenset(
        (key, _norm(value) if key != "archspec" else value)
        for key, value in packages.items()
        if key != "unix" and (_norm(value) if key != "archspec" else value) != _norm(defaults.get(key, "\0"))
    )


def lock_identity(subdir: str, virtual_packages: Sequence[str]) -> frozenset[tuple[str, str]]:
    """``identity`` of a lock platform from its ``__name=version[=build]`` strings (format 7)."""
    packages = {}
    for text in virtual_packages:
        name, _, rest = text.strip().partition("=")
        version, _, build = rest.partition("=")
        packages[_FRIENDLY_OF.get(name, name.lstrip("_"))] = build if name == "__archspec" else version
    return identity(subdir, packages)


def _entry_identity(subdir: str, entry: Any) -> frozenset[tuple[str, str]]:
    packages: dict[str, str] = {}
    for key, value in entry.items():
        key = str(key)
        if key == "cuda" and isinstance(value, dict):
            packages.update(
                {k: str(v) for k, v in (("cuda", value.get("driver")), ("cuda_arch", value.get("arch"))) if v}
            )
        elif key in ("cuda", "archspec", "glibc", "linux", "macos", "osx", "windows"):
            packages["macos" if key == "osx" else key] = str(value)
        elif key.startswith("__"):
            version, _, build = str(value).partition("=")
            packages[_FRIENDLY_OF.get(key, key.lstrip("_"))] = build if key == "__archspec" else version
    return identity(subdir, packages)


def _sysreq_entry(subdir: str, sysreq: Any) -> dict[str, str]:
    """The rich entry pixi migrates a plain subdir with ``[system-requirements]`` into (``__cuda`` is off osx)."""
    entry = {"platform": subdir}
    libc = sysreq.get("libc")
    glibc = libc.get("version") if isinstance(libc, dict) and libc.get("family", "glibc") == "glibc" else libc
    keys = {
        "cuda": sysreq.get("cuda"),
        "glibc": glibc,
        "linux": sysreq.get("linux"),
        "archspec": sysreq.get("archspec"),
        "macos": sysreq.get("macos"),
    }
    for key, value in keys.items():  # glibc and linux are linux-only, macos osx-only; cuda is off osx
        only = {"cuda": not subdir.startswith("osx"), "archspec": True, "macos": subdir.startswith("osx")}
        on_subdir = only.get(key, subdir.startswith("linux"))
        if isinstance(value, str) and on_subdir:
            entry[key] = value
    return entry


def declared_platforms(root: Any, meta: Any) -> list[DeclaredPlatform]:
    """Every platform pixi solves this manifest for, named as pixi names it (to match pixi.lock's aliases)."""
    listed = meta.get("platforms", []) if isinstance(meta, dict) else []
    out: list[DeclaredPlatform] = []

    def add(entry: Any) -> None:
        subdir = str(entry.get("platform") or entry.get("name") or "")
        cuda = entry.get("cuda")
        raw = cuda.get("driver") if isinstance(cuda, dict) else cuda if cuda is not None else entry.get("__cuda")
        version = str(raw).split("=", 1)[0].strip() if isinstance(raw, str) else ""
        try:
            parsed = CudaVersion.parse(version if "." in version else f"{version}.0") if version else None
        except Exception:
            parsed = None
        name = str(entry.get("name") or synthesized_name(entry))
        if all(p.name != name for p in out):
            out.append(DeclaredPlatform(name=name, subdir=subdir, cuda=parsed, identity=_entry_identity(subdir, entry)))

    plain = [str(p) for p in listed if isinstance(p, str)]
    if len(plain) < len(listed):  # rich entries: pixi keeps the list as written (no migration)
        for entry in listed:
            add({"platform": entry} if isinstance(entry, str) else entry)
        return out
    features = root.get("feature") if isinstance(root, dict) else None
    scopes = [(root, None)] + [
        (node, bound_platforms(node)) for node in (features or {}).values() if isinstance(node, dict)
    ]
    base = root.get("system-requirements") if isinstance(root, dict) else None
    for node, bound in scopes:
        own = node.get("system-requirements")
        sysreq = {**(base if isinstance(base, dict) else {}), **(own if isinstance(own, dict) else {})}
        if node is not root and not isinstance(own, dict):
            continue
        for subdir in bound or plain:
            add(_sysreq_entry(str(subdir), sysreq) if sysreq else {"platform": str(subdir)})
    for subdir in plain:  # the subdirs no scope migrated stay bare
        if all(p.subdir != subdir for p in out):
            add({"platform": subdir})
    return out


def _target_renames(edits: Sequence[Edit]) -> list[tuple[str, str]]:
    return [(e.old[:-1], e.new[:-1]) for e in edits if e.old.startswith("[") and "target." in e.old and e.old != e.new]


def renamed_header(text: str, edits: Sequence[Edit]) -> str:
    """``text`` (a header line, or an edit's ``[table] key = …``) under the renamed ``[target.<name>]`` tables."""
    for old, new in _target_renames(edits):
        if text.startswith((old + "]", old + ".")):
            return new + text[len(old) :]
    return text


def rename_targets(text: str, edits: Sequence[Edit]) -> str:
    """Apply the ``[target.<name>]`` renames ``move_platform`` decided to the header lines of the written text."""
    return "".join(renamed_header(line, edits) for line in text.splitlines(keepends=True))


_FAMILIES = {
    "linux": ("linux",),
    "unix": ("linux", "osx", "emscripten", "wasi", "zos"),
    "win": ("win",),
    "osx": ("osx",),
}


def target_applies(key: str, subdir: str, names: Sequence[str]) -> bool:
    """Does ``[target.<key>]`` apply to the solve on ``subdir``? pixi's selectors: a subdir (every platform on
    it), a family (linux, unix, win, osx), a glob, or a platform's name (``names``: those on ``subdir``)."""
    from fnmatch import fnmatchcase

    families = _FAMILIES.get(key)
    if families is not None:
        return subdir.split("-", 1)[0] in families
    if any(c in key for c in "*?["):
        return any(fnmatchcase(n, key) for n in [subdir, *names])
    return key == subdir or key in names


def pixi_words(declared: CudaVersion, target: CudaVersion) -> str:
    """What pixi makes of a platform declaring ``__cuda`` ``declared`` on a ``target`` driver, in its own terms.

    pixi installs for the first declared platform the machine satisfies; with none, for one whose lock the
    machine meets "by accident", else it stops listing the missing virtual packages (``__cuda >= 13``).
    """
    shown = str(declared.major) if declared.minor == 0 else str(declared)
    if declared <= target:
        return f"pixi runs it as resolved on a CUDA {target} driver"
    if declared.major > target.major:
        return (
            f"pixi: cannot run here as declared: `CONDA_OVERRIDE_CUDA={target} pixi install` finds no declared "
            f"platform this driver satisfies (missing virtual packages: __cuda >= {shown})"
        )
    return f"as declared (__cuda {shown}), pixi runs it on a CUDA {target} driver at best only by accident"


def sysreq_beside_rich(root: Any, meta: Any) -> str | None:
    """pixi >= 0.71 refuses ``[system-requirements]`` once a platform declares virtual packages (or a name of
    its own): condafix still reads both, and says so in pixi's words (crates/pixi_manifest/src/toml/manifest.rs)."""
    listed = meta.get("platforms", []) if isinstance(meta, dict) else []
    rich = [
        e
        for e in listed
        if isinstance(e, dict) and str(e.get("name") or synthesized_name(e)) != e.get("platform", e.get("name"))
    ]
    features = root.get("feature") if isinstance(root, dict) else None
    nodes = [root, *((features or {}).values())]
    tables = [n.get("system-requirements") for n in nodes if isinstance(n, dict)]
    if not rich or not any(isinstance(t, dict) and t for t in tables):
        return None
    return (
        "pixi (>= 0.71) stops on this manifest: '… uses `[system-requirements]` but the workspace declares "
        "per-platform virtual packages; remove the system-requirements table and declare the constraints on the "
        "platforms instead'; condafix reads and moves both and writes neither anew"
    )
