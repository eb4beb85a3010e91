"""``condafix env``: rewrite the CUDA pins of an environment.yml in place.

ruamel.yaml (round-trip) parses the file and says where each dependency sits; the edit itself is
made on those lines of the original text, so every other byte (comments, quoting, key order,
blank lines, anchors, CRLF line endings, a UTF-8 BOM) stays exactly as it was.
"""

from __future__ import annotations

import difflib
import os
import re
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from condafix.errors import CondafixError, Hint, UsageError
from condafix.knowledge import CudaVersion, knowledge

BOM = "\ufeff"
Family = Literal["cuda-version", "cudatoolkit"]
_SPEC = re.compile(
    r"^(?P<channel>[A-Za-z0-9_./:-]+::)?(?P<name>[A-Za-z0-9_.-]+)(?P<sep>\s*)(?P<constraint>[^#\[]*?)\s*$"
)
_CUDA_NAMES = re.compile(
    r"^(cudatoolkit|cuda-.*|libcu.*|libnv.*|nvcc_linux-64|numba-cuda|cupy|cupy-core|pytorch-cuda)$"
)


class EnvFileError(CondafixError):
    """The file cannot be used (bad YAML, wrong shape): exit code 2, file untouched."""

    def __init__(self, summary: str) -> None:
        super().__init__(summary, (), 2)


@dataclass(frozen=True)
class Edit:
    line: int
    old: str
    new: str
    reason: str


@dataclass(frozen=True)
class Note:
    line: int | None
    spec: str
    message: str


@dataclass(frozen=True)
class EnvFileResult:
    path: str
    target_cuda: str
    family: Family | None
    pin: str | None
    checked: str
    edits: tuple[Edit, ...]
    notes: tuple[Note, ...]
    diff: str
    changed: bool
    written: bool = False
    backup: str | None = None


@dataclass(frozen=True)
class Dep:
    """One conda dependency of the file: its text and where it sits (0-based line and column)."""

    spec: str
    line: int
    column: int


@dataclass(frozen=True)
class Parsed:
    text: str  # without BOM, original line endings
    bom: bool
    newline: str
    channels: tuple[str, ...]
    deps: tuple[Dep, ...]
    pip: tuple[Dep, ...]
    deps_line: int


# ---------------------------------------------------------------- reading


def read_source(path: str) -> tuple[str, str]:
    """Text of the file (``-`` for stdin) and its display name; one clear error if unreadable."""
    import sys

    if path == "-":
        return sys.stdin.buffer.read().decode("utf-8", errors="strict"), "<stdin>"
    try:
        return Path(path).read_bytes().decode("utf-8"), path
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except UnicodeDecodeError as exc:
        raise EnvFileError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise UsageError(f"{path}: {exc.strerror or exc}") from None


def default_file() -> str:
    for name in ("environment.yml", "environment.yaml"):
        if Path(name).is_file():
            return name
    raise UsageError("no environment.yml or environment.yaml here; pass the file to rewrite")


def parse(raw: str, name: str) -> Parsed:
    """Parse with ruamel round-trip; errors carry the line and column."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import MarkedYAMLError, YAMLError

    bom = raw.startswith(BOM)
    text = raw[1:] if bom else raw
    newline = "\r\n" if "\r\n" in text else "\n"
    doc: Any
    try:
        doc = YAML(typ="rt").load(text.replace("\r\n", "\n"))
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{name}:{mark.line + 1}:{mark.column + 1}" if mark else name
        raise EnvFileError(f"{where}: invalid YAML: {exc.problem or exc.context}") from None
    except YAMLError as exc:
        raise EnvFileError(f"{name}: invalid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(doc, dict):
        raise EnvFileError(f"{name}: not an environment file (the top level is not a mapping)")
    marks: Any = doc  # ruamel's CommentedMap: positions live in .lc
    deps_node: Any = doc.get("dependencies")
    deps_line = marks.lc.key("dependencies")[0] if "dependencies" in doc else -1
    if deps_node is None:
        deps_node = []
    if not isinstance(deps_node, list):
        line, col = marks.lc.value("dependencies")
        raise EnvFileError(f"{name}:{line + 1}:{col + 1}: `dependencies` is not a list")
    deps: list[Dep] = []
    pip: list[Dep] = []
    items: Any = deps_node
    for index, item in enumerate(items):
        line, col = items.lc.item(index)
        if isinstance(item, str):
            deps.append(Dep(str(item), line, col))
        elif isinstance(item, dict) and isinstance(item.get("pip"), list):
            pip_list = item["pip"]
            for j, pip_item in enumerate(pip_list):
                if isinstance(pip_item, str):
                    pline, pcol = pip_list.lc.item(j)
                    pip.append(Dep(str(pip_item), pline, pcol))
    channels = doc.get("channels")
    chan = tuple(str(c) for c in channels) if isinstance(channels, list) else ()
    return Parsed(text, bom, newline, chan, tuple(deps), tuple(pip), deps_line)


# ---------------------------------------------------------------- deciding


def split_spec(spec: str) -> tuple[str, str, str, str] | None:
    """(channel prefix, name, separator, constraint) of a conda spec string."""
    match = _SPEC.match(spec.strip())
    if not match:
        return None
    return match["channel"] or "", match["name"].lower(), match["sep"], match["constraint"].strip()


def allows_newer(constraint: str, name: str, target: CudaVersion, known: Sequence[str]) -> bool:
    """Does ``name <constraint>`` admit any known version newer than the target?"""
    from rattler import MatchSpec, Version, VersionSpec

    if not constraint:
        return True
    spec = MatchSpec(f"{name} {constraint}" if constraint[0] not in "=<>!~" else f"{name}{constraint}")
    if not spec.version:
        return True
    version_spec = VersionSpec(spec.version)
    return any(version_spec.matches(Version(v)) and CudaVersion.parse(v) > target for v in known)


def restyle(constraint: str, pin: CudaVersion) -> str:
    """The new constraint in the user's own style: ``=``, ``==``, `` X.*``, ``>=,<=`` or ``>=,<``."""
    if not constraint:
        return f"={pin}"
    if constraint.startswith(">") or "," in constraint:
        low_match = re.search(r">=?\s*(\d+(?:\.\d+)?)", constraint)
        low = low_match.group(1) if low_match else f"{pin.major}.0"
        if CudaVersion.parse(low if "." in low else f"{low}.0") > pin:
            low = f"{pin.major}.0"
        if re.search(r"<(?!=)", constraint):
            return f">={low},<{pin.major}.{pin.minor + 1}"
        return f">={low},<={pin}"
    for operator in ("==", "="):
        if constraint.startswith(operator):
            return f"{operator}{pin}"
    return f"{pin}.*" if constraint.endswith(".*") else str(pin)


def _name(spec: str) -> str:
    """Package name of a spec, or "" when it does not parse."""
    parts = split_spec(spec)
    return parts[1] if parts else ""


def spec_names(deps: Sequence[Dep]) -> set[str]:
    return {_name(d.spec) for d in deps} - {""}


def choose_family(deps: Sequence[Dep]) -> Family | None:
    """cudatoolkit files (CUDA <= 11) keep cudatoolkit; any other CUDA package means cuda-version."""
    names = spec_names(deps)
    if "cudatoolkit" in names:
        return "cudatoolkit"
    if any(_CUDA_NAMES.match(n) for n in names - {"pytorch-cuda"}):
        return "cuda-version"
    return None


def _file_major(deps: Sequence[Dep], family: Family, target: CudaVersion) -> int:
    """The CUDA major the file asks for: its explicit pin, else what an unpinned solve would give."""
    for dep in deps:
        parts = split_spec(dep.spec)
        if parts and parts[1] in (family, "cuda-version"):
            found = re.search(r"(\d+)(?:\.\d+)?", parts[3])
            if found:
                return int(found.group(1))
    if family == "cudatoolkit":
        return 11
    split_ctk = any(n.startswith(("cuda-", "libnvjitlink", "libcu")) and n != "cuda-version" for n in spec_names(deps))
    return max(target.major, 12) if split_ctk else target.major  # conda-forge splits the CTK from 12.0 on


# ---------------------------------------------------------------- the rewrite


def _replace_on_line(lines: list[str], dep: Dep, new_spec: str) -> tuple[str, str]:
    line = lines[dep.line]
    body = line.rstrip("\r\n")
    at = body.find(dep.spec, dep.column)
    if at < 0:
        raise EnvFileError(f"line {dep.line + 1}: cannot locate {dep.spec!r} to edit it")
    lines[dep.line] = body[:at] + new_spec + body[at + len(dep.spec) :] + line[len(body) :]
    return body, lines[dep.line].rstrip("\r\n")


def rewrite(parsed: Parsed, target: CudaVersion, pin_for: Mapping[str, str]) -> tuple[str, list[Edit], list[Note]]:
    """Apply the pins to the text; report what is not changed and why."""
    kb = knowledge()
    lines = parsed.text.splitlines(keepends=True)
    edits: list[Edit] = []
    notes: list[Note] = []
    present = set()
    for dep in parsed.deps:
        parts = split_spec(dep.spec)
        if parts is None:
            continue
        channel, pkg, sep, constraint = parts
        present.add(pkg)
        if pkg == "pytorch-cuda":
            wanted = [v for v in kb.pytorch_cuda_versions if v <= target]
            have = re.search(r"(\d+\.\d+)", constraint)
            if have and CudaVersion.parse(have.group(1)) > target:
                hint = f"pytorch-cuda={max(wanted)}" if wanted else "no pytorch-cuda exists for this driver"
                notes.append(
                    Note(
                        dep.line + 1,
                        dep.spec,
                        f"needs CUDA {have.group(1)} > {target}: change it yourself "
                        f"({hint}); the pytorch channel ties it to pytorch builds, so condafix only reports",
                    )
                )
            continue
        if pkg not in pin_for:
            continue
        known = list(kb.cudatoolkit_versions) if pkg == "cudatoolkit" else [str(v) for v in kb.cuda_version_versions]
        if not allows_newer(constraint, pkg, target, known):
            continue
        new_spec = f"{channel}{pkg}{sep}{restyle(constraint, CudaVersion.parse(pin_for[pkg]))}"
        old, new = _replace_on_line(lines, dep, new_spec)
        edits.append(Edit(dep.line + 1, old, new, f"{pkg} allowed CUDA newer than {target}"))
    if "cuda-version" in pin_for and "cuda-version" not in present and parsed.deps:
        anchor = max(
            (d for d in parsed.deps if _name(d.spec) in pin_for or _CUDA_NAMES.match(_name(d.spec))),
            key=lambda d: d.line,
            default=parsed.deps[-1],
        )
        body = lines[anchor.line].rstrip("\r\n")
        indent = body[: anchor.column]
        new_line = f"{indent}cuda-version={pin_for['cuda-version']}{parsed.newline}"
        if not lines[anchor.line].endswith(("\n", "\r")):
            lines[anchor.line] += parsed.newline
        lines.insert(anchor.line + 1, new_line)
        edits.append(Edit(anchor.line + 2, "", new_line.rstrip("\r\n"), f"no cuda-version pin: added one for {target}"))
    for dep in parsed.pip:
        parts = split_spec(dep.spec.split(";")[0])
        pkg = parts[1] if parts else dep.spec
        if pkg in ("cudatoolkit",) or pkg.startswith("nvidia-"):
            notes.append(
                Note(
                    dep.line + 1,
                    dep.spec,
                    "a pip dependency: reported, not changed (pin it to CUDA "
                    f"<= {target} yourself, e.g. `{pkg}=={target}.*`)",
                )
            )
    return "".join(lines), edits, notes


def _candidate_pins(family: Family, major: int, target: CudaVersion) -> list[CudaVersion]:
    kb = knowledge()
    if family == "cudatoolkit":
        versions = {CudaVersion.parse(v) for v in kb.cudatoolkit_versions}
    else:
        versions = set(kb.cuda_version_versions)
    return sorted((v for v in versions if v.major == major and v <= target), reverse=True)


def check_with_channel(
    parsed: Parsed, family: Family, major: int, target: CudaVersion, channels: Sequence[str], offline: bool
) -> tuple[CudaVersion | None, str]:
    """Newest pin that exists on the channel and solves the file's specs; (None, why) if none."""
    from condafix import rattler_backend as rb
    from condafix.planner import candidate_minors, normalize_channel

    chosen = tuple(normalize_channel(c) for c in channels) or parsed.channels or ("conda-forge",)
    gw = rb.gateway(offline=offline)
    target_rb = rb.Target(tuple(chosen), "linux-64", str(target))
    versions = [str(r.version) for r in rb.query(gw, target_rb, [family])]
    candidates = candidate_minors(versions, major=major, limit=target)
    keep = [d.spec for d in parsed.deps if not d.spec.startswith("pip") and _name(d.spec) != family]
    for candidate in candidates:
        try:
            rb.solve(gw, target_rb, [*keep, f"{family}={candidate}"], [])
        except rb.SolveFailed:
            continue
        return candidate, f"{family}={candidate} exists on {', '.join(chosen)} and the file's specs solve with it"
    return None, f"no {family} <= {target} on {', '.join(chosen)} solves the file's specs"


def plan_file(
    raw: str,
    name: str,
    target: CudaVersion,
    *,
    channels: Sequence[str] = (),
    offline: bool = False,
    check_channel: bool = True,
) -> tuple[EnvFileResult, str]:
    """Decide the new text; nothing is written here."""
    parsed = parse(raw, name)
    family = choose_family(parsed.deps)
    if family is None:
        _, _, notes = rewrite(parsed, target, {})  # pytorch-cuda and pip lines are still reported
        if not notes and "pytorch-cuda" in spec_names(parsed.deps):
            notes = [Note(None, "pytorch-cuda", f"fits a CUDA {target} driver: nothing to change")]
        notes = notes or [Note(None, "", "no CUDA package in this file: nothing to change")]
        return EnvFileResult(name, str(target), None, None, "not needed", (), tuple(notes), "", False), raw
    major = _file_major(parsed.deps, family, target)
    if major > target.major:
        need = knowledge().min_driver_for(CudaVersion(major, 0))
        note = Note(
            None,
            "",
            f"the file asks for CUDA {major}.x and the target is CUDA {target}: that crosses a "
            f"major; upgrade the driver (>= {need}) instead; nothing changed",
        )
        return EnvFileResult(name, str(target), family, None, "not needed", (), (note,), "", False), raw
    if major < target.major:
        note = Note(None, "", f"CUDA {major}.x runs on a CUDA {target} driver: nothing to change")
        return EnvFileResult(name, str(target), family, None, "not needed", (), (note,), "", False), raw
    if check_channel and not offline:
        pin, checked = check_with_channel(parsed, family, major, target, channels, offline)
        if pin is None:
            raise CondafixError(f"{name}: {checked}", (Hint("offline", "pass --offline to skip the check"),))
    else:
        candidates = _candidate_pins(family, major, target)
        if not candidates:
            raise CondafixError(f"{name}: no conda-forge {family} exists for CUDA {major}.x <= {target}")
        pin, checked = candidates[0], "offline: chosen from condafix's conda-forge table, not checked on a channel"
    pins: dict[str, str] = {family: str(pin)}
    if family == "cudatoolkit" and "cuda-version" in spec_names(parsed.deps):
        pins["cuda-version"] = str(pin)
    new_body, edits, notes = rewrite(parsed, target, pins)
    new_raw = (BOM if parsed.bom else "") + new_body
    diff = "".join(
        difflib.unified_diff(
            raw.splitlines(keepends=True), new_raw.splitlines(keepends=True), fromfile=f"a/{name}", tofile=f"b/{name}"
        )
    )
    result = EnvFileResult(
        name, str(target), family, f"{family}={pin}", checked, tuple(edits), tuple(notes), diff, new_raw != raw
    )
    return result, new_raw


def write_atomically(path: Path, content: str) -> Path:
    """Replace ``path`` with ``content`` via a temp file + rename (same permissions); keep ``.bak``."""
    backup = path.with_name(path.name + ".bak")
    shutil.copy2(path, backup)
    handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as out:
            out.write(content)
            out.flush()
            os.fsync(out.fileno())
        shutil.copymode(path, temp)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return backup
