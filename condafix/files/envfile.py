"""``condafix env``: move the CUDA pins of an environment.yml as one group, in place.

ruamel.yaml (round-trip) parses the file and says where each dependency sits; the edit itself is
made on those lines of the original text, so every other byte (comments, quoting, key order,
blank lines, anchors, CRLF line endings, a UTF-8 BOM) stays exactly as it was. Which specs carry
CUDA and where they move is decided by ``cudagroup`` (shared with pixi manifests); specs are read
with conda's MatchSpec grammar (rattler).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from condafix.errors import CondafixError, UsageError
from condafix.files import cudagroup
from condafix.files.edits import Edit, EnvFileResult, GroupMember, Note
from condafix.knowledge.cuda import CudaVersion

if TYPE_CHECKING:
    from condafix.plan.solver import Backend

BOM = "\ufeff"
# Template placeholders of the generators people run before conda: autoconf/CMake @VAR@, Jinja
# {{ var }} / {% %}, shell and envsubst ${VAR}. Linear-time patterns (no nested quantifiers).
_PLACEHOLDER = re.compile(r"@[A-Za-z_][A-Za-z0-9_]*@|\{\{[^{}\n]*\}\}|\{%[^%\n]*%\}|\$\{[A-Za-z_][A-Za-z0-9_]*\}")
_HEAD = re.compile(r"(?:[^\s:\[=<>!~]+::)?[A-Za-z0-9_][A-Za-z0-9_.\-]*")
_PIP_CUDA = re.compile(r"^(nvidia-[a-z0-9-]+|cudatoolkit|cupy-cuda\d+x|jax-cuda\d+-plugin|torch)\b", re.IGNORECASE)


class EnvFileError(CondafixError):
    """The file cannot be used (bad YAML, wrong shape, a template): exit code 2, file untouched."""

    def __init__(self, summary: str) -> None:
        super().__init__(summary, (), 2)


@dataclass(frozen=True, kw_only=True)
class Dep:
    """One conda dependency of the file: its text and where it sits (0-based line and column)."""

    spec: str
    line: int
    column: int


@dataclass(frozen=True, kw_only=True)
class Parsed:
    text: str  # without BOM, original line endings
    bom: bool
    newline: str
    channels: tuple[str, ...]
    deps: tuple[Dep, ...]
    pip: tuple[Dep, ...]
    deps_line: int


@dataclass(frozen=True, kw_only=True)
class SpecText:
    """Where the version and build sit inside one spec string (spans into ``text``)."""

    text: str
    name: str
    version: tuple[int, int]  # empty span at the end of the name when unpinned
    build: tuple[int, int] | None
    normalized: str | None
    channel: str | None

    @property
    def version_text(self) -> str:
        return self.text[self.version[0] : self.version[1]]

    @property
    def build_text(self) -> str:
        return self.text[self.build[0] : self.build[1]] if self.build else ""

    def with_parts(self, version: str | None, build: str | None) -> str:
        """The same spec with the version and/or build text replaced; everything else as written."""
        pieces = [(self.version, version)]
        if self.build is not None and build is not None:
            pieces.append((self.build, build))
        out = self.text
        for (start, end), new in sorted(pieces, key=lambda p: p[0][0], reverse=True):
            if new is not None:
                out = out[:start] + new + out[end:]
        return out


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
    except IsADirectoryError:
        raise UsageError(f"{path}: is a directory") from None
    except UnicodeDecodeError as exc:
        raise EnvFileError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise UsageError(f"{path}: {exc.strerror or exc}") from None


def default_file() -> str:
    for name in ("environment.yml", "environment.yaml", "pixi.toml"):
        if Path(name).is_file():
            return name
    raise UsageError("no environment.yml, environment.yaml or pixi.toml here; pass the file to rewrite")


def _in_url(line: str, at: int) -> bool:
    """Is position ``at`` inside a URL (``user:p@ss@host``: an ``@x@`` there is a password, not a template)?"""
    scheme = line.rfind("://", 0, at)
    return scheme != -1 and not any(char.isspace() for char in line[scheme:at])


def find_template(text: str, name: str) -> str | None:
    """``name:LINE: `text` ...`` for the first template placeholder outside comments, else None."""
    for number, line in enumerate(text.splitlines(), 1):
        body = line.split(" #", 1)[0] if not line.lstrip().startswith("#") else ""
        found = next((m for m in _PLACEHOLDER.finditer(body) if not _in_url(body, m.start())), None)
        if found:
            return (
                f"{name}:{number}: `{line.strip()}` holds the template placeholder {found.group(0)}: "
                "this is a template, not an environment file; render it first and run condafix on the result "
                "(nothing changed)"
            )
    return None


MAX_FLOW_DEPTH = 64


def _flow_depth(text: str) -> int:
    """The deepest ``[``/``{`` nesting (a bound: brackets inside strings count too)."""
    depth = deepest = 0
    for char in text:
        if char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}" and depth:
            depth -= 1
    return deepest


_DOC_SUFFIXES = {".md": "Markdown", ".markdown": "Markdown", ".rst": "reStructuredText", ".ipynb": "Jupyter"}


def parse(raw: str, name: str) -> Parsed:
    """Parse with ruamel round-trip; errors carry the line and column."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import MarkedYAMLError, YAMLError

    if Path(name).suffix.lower() in _DOC_SUFFIXES:  # its code blocks look like templates: say what it is
        raise EnvFileError(
            f"{name}: a {_DOC_SUFFIXES[Path(name).suffix.lower()]} document, not an environment file "
            "(environment.yml, pixi.toml or pyproject.toml)"
        )
    bom = raw.startswith(BOM)
    text = raw[1:] if bom else raw
    newline = "\r\n" if "\r\n" in text else "\n"
    template = find_template(text, name)
    if template:
        raise EnvFileError(template)
    if _flow_depth(text) > MAX_FLOW_DEPTH:  # ruamel recurses per level: refuse before it does, in linear time
        raise EnvFileError(f"{name}: invalid YAML: nested too deeply for an environment file")
    doc: Any
    try:
        doc = YAML(typ="rt").load(text.replace("\r\n", "\n"))
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{name}:{mark.line + 1}:{mark.column + 1}" if mark else name
        raise EnvFileError(f"{where}: invalid YAML: {exc.problem or exc.context}") from None
    except RecursionError:
        raise EnvFileError(f"{name}: invalid YAML: nested too deeply for an environment file") from None
    except (YAMLError, ValueError, TypeError) as exc:  # ruamel raises plain errors for some inputs
        raise EnvFileError(f"{name}: invalid YAML: {str(exc).splitlines()[0] if str(exc) else exc}") from None
    if not isinstance(doc, dict):
        raise EnvFileError(f"{name}: not an environment file (the top level is not a mapping)")
    _refuse_tags(doc, name)
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
            deps.append(Dep(spec=str(item), line=line, column=col))
        elif isinstance(item, dict) and isinstance(item.get("pip"), list):
            pip_list = item["pip"]
            for j, pip_item in enumerate(pip_list):
                if isinstance(pip_item, str):
                    pline, pcol = pip_list.lc.item(j)
                    pip.append(Dep(spec=str(pip_item), line=pline, column=pcol))
    channels = doc.get("channels")
    chan = tuple(str(c) for c in channels) if isinstance(channels, list) else ()
    return Parsed(
        text=text, bom=bom, newline=newline, channels=chan, deps=tuple(deps), pip=tuple(pip), deps_line=deps_line
    )


def _refuse_tags(doc: Any, name: str) -> None:
    """An explicit YAML tag (``!!python/object:os.system``) has no meaning in an environment file: refuse it.

    ruamel's round-trip loader keeps tags instead of constructing objects, so nothing ran; but the node is
    not a list or a string any more. One linear walk with a stack (no recursion).
    """
    stack: list[Any] = [doc]
    while stack:
        node = stack.pop()
        tag = getattr(getattr(node, "tag", None), "value", None)
        if tag:
            shown = tag.replace("tag:yaml.org,2002:", "!!")
            raise EnvFileError(f"{name}: YAML tag {shown} is not part of an environment file")
        if isinstance(node, dict):
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)


# ---------------------------------------------------------------- specs


def split_spec(spec: str) -> SpecText | None:
    """Locate the version and build of a conda spec in its text; rattler's MatchSpec must agree."""
    from condafix.backends.rattler.grammar import parse_spec

    text = spec.strip()
    parts = parse_spec(text)
    head = _HEAD.match(text)
    if parts is None or head is None:
        return None
    end = head.end()
    rest = text[end:]
    version: tuple[int, int] = (end, end)
    build: tuple[int, int] | None = None
    if rest.startswith("["):
        for key in ("version", "build"):
            found = re.search(rf"\b{key}\s*=\s*(['\"]?)([^'\"\],]*(?:,[^'\"\],]*)*)\1", rest)
            if found:
                span = (end + found.start(2), end + found.end(2))
                if key == "version":
                    version = span
                else:
                    build = span
    elif rest.startswith("=") and not rest.startswith("=="):
        second = rest.find("=", 1)
        version = (end, end + (second if second > 0 else len(rest)))
        if second > 0:
            build = (end + second + 1, end + len(rest))
    elif rest.startswith(("==", "<", ">", "!", "~")):
        token = rest.split(None, 1)[0]
        version = (end, end + len(token))
        tail = rest[len(token) :]
        if tail.strip():
            start = end + len(token) + (len(tail) - len(tail.lstrip()))
            build = (start, start + len(tail.strip()))
    elif rest[:1].isspace():
        tokens = list(re.finditer(r"\S+", rest))
        if tokens:
            version = (end + tokens[0].start(), end + tokens[0].end())
        if len(tokens) > 1:
            build = (end + tokens[1].start(), end + tokens[-1].end())
    elif rest:
        return None
    return SpecText(
        text=text, name=parts.name, version=version, build=build, normalized=parts.version, channel=parts.channel
    )


def _version_glob(spec: SpecText) -> bool:
    """``pytorch *cuda112*``: conda reads a lone glob in the version place as a *version* (it matches
    no release; checked with conda 26.7's MatchSpec), while rattler reads it as a build."""
    version = spec.version_text
    return not spec.build_text and version.startswith("*") and version.strip() != "*"


def _item(spec: SpecText) -> cudagroup.Item:
    if _version_glob(spec):  # follow conda: not a build pin, so not part of the CUDA group
        return cudagroup.Item(name=spec.name, version="", build="", normalized=None)
    return cudagroup.Item(
        name=spec.name,
        version=spec.version_text if spec.normalized else "",
        build=spec.build_text,
        normalized=spec.normalized,
    )


# ---------------------------------------------------------------- deciding


def _replace_on_line(lines: list[str], dep: Dep, new_spec: str) -> tuple[str, str]:
    line = lines[dep.line]
    body = line.rstrip("\r\n")
    at = body.find(dep.spec, dep.column)
    if at < 0:
        raise EnvFileError(f"line {dep.line + 1}: cannot locate {dep.spec!r} to edit it")
    lines[dep.line] = body[:at] + new_spec + body[at + len(dep.spec) :] + line[len(body) :]
    return body, lines[dep.line].rstrip("\r\n")


def _pip_notes(parsed: Parsed, target: CudaVersion) -> list[Note]:
    notes = []
    for dep in parsed.pip:
        found = _PIP_CUDA.match(dep.spec.strip())
        if found:
            notes.append(
                Note(
                    line=dep.line + 1,
                    spec=dep.spec,
                    message=f"a pip dependency: reported, not changed (pin its CUDA to <= {target} yourself)",
                )
            )
    return notes


Render = Callable[[dict[int, cudagroup.Move], "tuple[str, str] | None"], list[str]]


def channel_check(
    backend: Backend, channels: Sequence[str], target: CudaVersion, render: Render, *, platform: str = "linux-64"
) -> tuple[cudagroup.Lookup, cudagroup.Check, str]:
    """Channel look-ups and a whole-file solve per candidate CUDA through the backend the command layer
    opened (conda's configured solver inside conda, else rattler), as a new env, with ``__cuda`` = target."""
    from condafix.plan.planner import normalize_channel
    from condafix.plan.solver import SolveFailed

    wanted = [normalize_channel(c) for c in channels if c != "nodefaults"]  # nodefaults: a conda env-file word
    chosen = backend.channels(wanted, ()) or ("conda-forge",)
    cache: dict[str, cudagroup.Records] = {}

    def lookup(name: str) -> cudagroup.Records:
        if name not in cache:
            found = backend.query(chosen, [name], platform=platform)
            cache[name] = [(r.version, r.build, r.depends) for r in found]
        return cache[name]

    def check(_cuda: CudaVersion, moves: dict[int, cudagroup.Move], add: tuple[str, str] | None) -> str | None:
        try:
            backend.solve(
                channels=chosen, platform=platform, cuda=str(target), cuda_arch=None, pins=(), specs=render(moves, add)
            )
        except SolveFailed as failed:
            lines = [line.strip() for line in failed.message.splitlines() if line.strip()]
            return "does not solve with the file's specs: " + " / ".join(lines[:3])
        return None

    return lookup, check, f"{', '.join(chosen)}; solved by {solver_label(backend)}"


def solver_label(backend: Backend) -> str:
    """What checked the file, for the result: ``conda (libmamba)``, ``rattler``."""
    return str(getattr(backend, "label", backend.name))


def plan_file(
    raw: str,
    name: str,
    target: CudaVersion,
    *,
    channels: Sequence[str] = (),
    backend: Backend | None = None,
    allow_major: bool = False,
) -> tuple[EnvFileResult, str]:
    """Decide the new text; nothing is written here. Without a ``backend`` nothing is checked on a channel."""
    parsed = parse(raw, name)
    specs: dict[int, SpecText] = {}
    notes: list[Note] = []
    for index, dep in enumerate(parsed.deps):
        spec = split_spec(dep.spec)
        if spec is None:
            head = _HEAD.match(dep.spec.strip())
            if head and cudagroup.kind_of(head.group(0).split("::")[-1].lower()):
                raise EnvFileError(f"{name}:{dep.line + 1}: `{dep.spec}` is not a conda spec conda would accept")
            notes.append(
                Note(
                    line=dep.line + 1,
                    spec=dep.spec,
                    message="not a conda spec: left as it is and left out of the check",
                )
            )
            continue
        if _version_glob(spec):
            notes.append(
                Note(
                    line=dep.line + 1,
                    spec=dep.spec,
                    message=f"conda reads `{spec.version_text}` as a version, which no {spec.name} release matches; "
                    f"for a build pin write `{spec.name} * {spec.version_text}` (reported, not changed, left out "
                    "of the check)",
                )
            )
            continue
        specs[index] = spec
    order = sorted(specs)
    items = [_item(specs[i]) for i in order]
    group = tuple(
        GroupMember(line=parsed.deps[i].line + 1, spec=parsed.deps[i].spec, kind=kind)
        for i, item in zip(order, items, strict=True)
        if (kind := cudagroup.kind_of(item.name, item.build))
    )
    lookup: cudagroup.Lookup | None = None
    check: cudagroup.Check | None = None
    where = ""
    if backend is not None and group:

        def render(moves: dict[int, cudagroup.Move], add: tuple[str, str] | None) -> list[str]:
            out = [
                specs[i].with_parts(moves[p].version, moves[p].build) if p in moves else specs[i].text
                for p, i in enumerate(order)
            ]
            return [*out, f"{add[0]}={add[1]}"] if add else out

        lookup, check, where = channel_check(backend, list(channels) or list(parsed.channels), target, render)

    decision = cudagroup.decide(
        items, target, allow_major=allow_major, lookup=lookup, check=check, channels=parsed.channels or channels
    )
    notes += [Note(line=None, spec="", message=n) for n in decision.notes] + _pip_notes(parsed, target)
    base = EnvFileResult(
        path=name,
        target_cuda=str(target),
        family=None,
        pin=None,
        checked=decision.checked,
        edits=(),
        notes=tuple(notes),
        diff="",
        changed=False,
        status=decision.status,
        reason=decision.reason,
        group=group,
        attempts=decision.attempts,
        solver=solver_label(backend) if backend is not None and where else None,
    )
    if decision.status != "change" or decision.cuda is None:
        return base, raw
    lines = parsed.text.splitlines(keepends=True)
    edits: list[Edit] = []
    for position, move in sorted(decision.moves.items()):
        index = order[position]
        dep = parsed.deps[index]
        new_spec = specs[index].with_parts(move.version, move.build)
        old, new = _replace_on_line(lines, dep, new_spec)
        edits.append(Edit(line=dep.line + 1, old=old, new=new, reason=move.reason))
    if decision.add:
        _insert_pin(parsed, lines, edits, [parsed.deps[order[i]] for i, _ in enumerate(items)], decision.add, target)
    new_raw = (BOM if parsed.bom else "") + "".join(lines)
    diff = "".join(
        difflib.unified_diff(
            raw.splitlines(keepends=True), new_raw.splitlines(keepends=True), fromfile=f"a/{name}", tofile=f"b/{name}"
        )
    )
    pin = f"{decision.add[0]}={decision.add[1]}" if decision.add else f"CUDA {decision.cuda}"
    anchors = [e.new.strip().lstrip("- ").strip("'\"").split("#")[0].strip() for e in edits]
    if not decision.add and anchors:
        pin = ", ".join(anchors)
    checked = decision.checked + (f" ({where})" if where else "")
    result = EnvFileResult(
        path=name,
        target_cuda=str(target),
        family=decision.add[0] if decision.add else None,
        pin=pin,
        checked=checked,
        edits=tuple(edits),
        notes=tuple(notes),
        diff=diff,
        changed=new_raw != raw,
        status="change",
        reason=decision.reason,
        group=group,
        attempts=decision.attempts,
        solver=base.solver,
    )
    return result, new_raw


def _insert_pin(
    parsed: Parsed,
    lines: list[str],
    edits: list[Edit],
    deps: Sequence[Dep],
    add: tuple[str, str],
    target: CudaVersion,
) -> None:
    """Add ``cuda-version=X.Y`` after the last CUDA-bearing dependency, with its indentation."""
    cuda_deps = [d for d in deps if (s := split_spec(d.spec)) and cudagroup.kind_of(s.name, s.build_text)]
    anchor = max(cuda_deps or list(parsed.deps), key=lambda d: d.line)
    body = lines[anchor.line].rstrip("\r\n")
    indent = body[: anchor.column]
    new_line = f"{indent}{add[0]}={add[1]}{parsed.newline}"
    if not lines[anchor.line].endswith(("\n", "\r")):
        lines[anchor.line] += parsed.newline
    lines.insert(anchor.line + 1, new_line)
    for i, edit in enumerate(edits):
        if edit.line > anchor.line + 1:
            edits[i] = Edit(line=edit.line + 1, old=edit.old, new=edit.new, reason=edit.reason)
    edits.append(
        Edit(
            line=anchor.line + 2,
            old="",
            new=new_line.rstrip("\r\n"),
            reason=f"no CUDA pin in the file: added one for CUDA {target}",
        )
    )
