"""``condafix env pixi.toml``: CUDA pins of a pixi manifest (pixi.toml or pyproject ``[tool.pixi]``).

tomlkit edits the document in place, so comments, order and formatting stay; a manifest that
needs no change is never re-serialised (byte-identical). Each scope moves as one CUDA group: the
default dependencies (with their ``[target.*]`` tables) and each feature (with its targets). A
feature whose CUDA comes only through a package (cupy, pytorch-gpu) gets its own ``cuda-version``
pin; one that needs a newer CUDA major than the driver is reported, not rewritten.

The CUDA a scope declares comes from pixi's rich platforms (pixi >= 0.71: ``platforms = [{ platform =
"linux-64", cuda = "12.9" }]``, ``cuda = { driver = "12.9", arch = "8.6" }`` or a raw ``__cuda``) and from the
deprecated ``[system-requirements]``. Both are read and moved with the group; a declaration is never added
where the manifest had none, and ``[system-requirements]`` is never newly written.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from condafix.files import cudagroup
from condafix.files.edits import Edit, EnvFileResult, GroupMember, Note
from condafix.files.envfile import (
    EnvFileError,
    channel_check,
    find_template,
    solver_label,
)
from condafix.files.pixiplatforms import (
    DeclaredPlatform,
    RichPlatform,
    applies,
    bound_platforms,
    declared_platforms,
    move_platform,
    pixi_words,
    rename_targets,
    renamed_header,
    rich_platforms,
    sysreq_beside_rich,
    target_applies,
)
from condafix.knowledge.cuda import CudaVersion

if TYPE_CHECKING:
    from condafix.plan.solver import Backend


@dataclass(frozen=True, kw_only=True)
class Dependency:
    """One conda dependency of a scope: the table holding it, its key, version and build text."""

    table: Any
    key: str
    version: str
    build: str
    where: str  # e.g. "[feature.gpu.dependencies]"
    platform: str | None = None  # from a [target.<platform>] table


@dataclass(frozen=True, kw_only=True)
class Scope:
    name: str  # "default" or the feature's name
    deps_table: Any  # where an added pin goes
    deps_where: str
    deps: tuple[Dependency, ...]
    system_cuda: tuple[Any, str] | None  # (table, where) holding `cuda = "12"`
    rich: tuple[RichPlatform, ...] = ()  # the rich platforms this scope is solved on that declare CUDA


def _load(raw: str, name: str) -> Any:
    import tomlkit
    from tomlkit.exceptions import ParseError

    template = find_template(raw, name)
    if template:
        raise EnvFileError(template)
    try:
        return tomlkit.parse(raw)
    except ParseError as exc:
        raise EnvFileError(f"{name}:{exc.line}:{exc.col}: invalid TOML: {str(exc).split(' at line')[0]}") from None
    except Exception as exc:  # tomlkit raises assorted errors on odd input
        raise EnvFileError(f"{name}: invalid TOML: {str(exc).splitlines()[0] if str(exc) else exc}") from None


def _root(doc: Any, name: str) -> tuple[Any, str]:
    """The pixi table and its name prefix (``tool.pixi.`` inside pyproject.toml)."""
    tool = doc.get("tool")
    if isinstance(tool, dict) and isinstance(tool.get("pixi"), dict):
        return tool["pixi"], "tool.pixi."
    if Path(name).name == "pyproject.toml":
        raise EnvFileError(f"{name}: no [tool.pixi] table, so not a pixi manifest")
    if any(k in doc for k in ("workspace", "project", "dependencies", "feature")):
        return doc, ""
    raise EnvFileError(f"{name}: not a pixi manifest (no [workspace], [project] or [tool.pixi] table)")


def _table(parent: Any, key: str) -> Any | None:
    value = parent.get(key) if isinstance(parent, dict) else None
    return value if isinstance(value, dict) else None


def _deps(table: Any, where: str, name: str, platform: str | None = None) -> Iterator[Dependency]:
    for key, value in table.items():
        if isinstance(value, str):
            yield Dependency(table=table, key=str(key), version=str(value), build="", where=where, platform=platform)
        elif isinstance(value, dict):
            version = value.get("version", "*")
            build = value.get("build", "")
            if not isinstance(version, str) or not isinstance(build, str):
                raise EnvFileError(f"{name}: {where} {key}: version and build must be strings")
            yield Dependency(table=table, key=str(key), version=version, build=build, where=where, platform=platform)
        else:
            raise EnvFileError(f"{name}: {where} {key}: not a version string or a table")


def _scope(
    node: Any, label: str, prefix: str, name: str, rich: Sequence[RichPlatform] = (), solve_platform: str = ""
) -> Scope:
    """One scope's dependencies: its own table and those of its ``[target.<platform>]`` tables."""
    base = f"{prefix}{'' if label == 'default' else f'feature.{label}.'}"
    deps: list[Dependency] = []
    table = _table(node, "dependencies")
    if table is not None:
        deps += _deps(table, f"[{base}dependencies]", name)
    targets = _table(node, "target") or {}
    for platform, target in targets.items():
        sub = _table(target, "dependencies")
        if sub is not None:
            deps += _deps(sub, f"[{base}target.{platform}.dependencies]", name, str(platform))
    system = _table(node, "system-requirements")
    sysreq = (system, f"[{base}system-requirements]") if system is not None and "cuda" in system else None
    names = None if label == "default" else bound_platforms(node)
    mine = tuple(p for p in rich if p.subdir == solve_platform and applies(p, names))
    return Scope(
        name=label,
        deps_table=table,
        deps_where=f"[{base}dependencies]",
        deps=tuple(deps),
        system_cuda=sysreq,
        rich=mine,
    )


def _item(dep: Dependency) -> cudagroup.Item:
    from condafix.backends.rattler.grammar import parse_spec

    parts = parse_spec(f"{dep.key} {dep.version.strip() or '*'}")
    normalized = parts.version if parts and parts.version not in (None, "*") else None
    return cudagroup.Item(
        name=dep.key.lower(), version=dep.version if normalized else "", build=dep.build, normalized=normalized
    )


def _set(dep: Dependency, move: cudagroup.Move) -> None:
    value = dep.table[dep.key]
    if isinstance(value, dict):
        if move.version is not None:
            value["version"] = move.version
        if move.build is not None:
            value["build"] = move.build
    elif move.build is not None:
        import tomlkit

        inline = tomlkit.inline_table()
        inline.update({"version": move.version or dep.version, "build": move.build})
        dep.table[dep.key] = inline
    elif move.version is not None:
        dep.table[dep.key] = move.version


def _shown(dep: Dependency, move: cudagroup.Move | None) -> str:
    """``[table] key = "version"`` (or the inline table with the build) as the manifest says it."""
    version = move.version if move and move.version is not None else dep.version
    build = move.build if move and move.build is not None else dep.build
    value = f'{{ version = "{version}", build = "{build}" }}' if build else f'"{version}"'
    return f"{dep.where} {dep.key} = {value}"


def _spec(dep: Dependency, move: cudagroup.Move | None) -> str:
    version = move.version if move and move.version is not None else dep.version
    build = move.build if move and move.build is not None else dep.build
    return f"{dep.key} {version.strip() or '*'}{' ' + build if build else ''}"


def plan_manifest(
    raw: str,
    name: str,
    target: CudaVersion,
    *,
    channels: Sequence[str] = (),
    backend: Backend | None = None,
    allow_major: bool = False,
) -> tuple[EnvFileResult, str]:
    """Decide the new manifest text; nothing is written here. Without a ``backend``, no channel check."""
    doc = _load(raw, name)
    root, prefix = _root(doc, name)
    meta = _table(root, "workspace") or _table(root, "project") or {}
    listed = meta.get("channels", [])
    manifest_channels = [str(c if isinstance(c, str) else c.get("channel", "")) for c in listed]
    listed_platforms = meta.get("platforms", [])
    platforms = [str(p.get("platform") or p.get("name")) if isinstance(p, dict) else str(p) for p in listed_platforms]
    solve_platform = "linux-64" if "linux-64" in platforms or not platforms else platforms[0]
    meta_where = f"[{prefix}{'workspace' if _table(root, 'workspace') is not None else 'project'}] platforms"
    rich = rich_platforms(meta, meta_where, name)
    on_solve = [p.name for p in declared_platforms(root, meta) if p.subdir == solve_platform]
    scopes = [_scope(root, "default", prefix, name, rich, solve_platform)]
    for feature, node in (_table(root, "feature") or {}).items():
        if isinstance(node, dict):
            scopes.append(_scope(node, str(feature), prefix, name, rich, solve_platform))
    noted: set[int] = set()  # rich platforms already moved or reported
    notes: list[Note] = []
    edits: list[Edit] = []
    group: list[GroupMember] = []
    reasons: list[str] = []
    refused: list[str] = []
    reported: list[str] = []  # a newer major than the driver: a fact about that feature, not a failure
    checked: set[str] = set()
    solver: str | None = None
    for scope in scopes:
        items = [_item(d) for d in scope.deps]
        kinds = [cudagroup.kind_of(i.name, i.build) for i in items]
        group += [
            GroupMember(line=None, spec=f"{d.where} {d.key} = {d.version!r}", kind=k)
            for d, k in zip(scope.deps, kinds, strict=True)
            if k
        ]
        sysreq = _system_cuda(scope, name)
        if sysreq is None and scope is not scopes[0]:  # an environment adds its features to the default
            sysreq = _system_cuda(scopes[0], name)
            scope = replace(scope, system_cuda=None)
        too_new = [p for p in scope.rich if p.cuda.major > target.major]
        if any(kinds) and too_new and len(too_new) == len(scope.rich) and not (sysreq and sysreq.major <= target.major):
            for platform in too_new:  # every platform it is solved on needs a newer driver: a fact, not a failure
                reported.append(
                    f"{scope.name}: {platform.shown()} needs a CUDA {platform.cuda.major} driver and this one "
                    f"supports CUDA {target}; {pixi_words(platform.cuda, target)}: reported, not rewritten"
                )
                noted.add(id(platform.entry))
            continue
        scope = replace(scope, rich=tuple(p for p in scope.rich if p not in too_new))
        if sysreq is not None and sysreq.major > target.major:
            where = (scope.system_cuda or scopes[0].system_cuda or (None, "system-requirements"))[1]
            reported.append(
                f"{scope.name}: {where} cuda = {_raw_system_cuda(scope, scopes[0])!r} needs a CUDA "
                f"{sysreq.major} driver and this one supports CUDA {target}; {pixi_words(sysreq, target)}: "
                "reported, not rewritten"
            )
            continue
        if not any(kinds):
            if sysreq is not None and (sysreq > target):
                refused.append(f"{scope.name}: system-requirements cuda = {sysreq} is newer than the driver's {target}")
            continue
        lookup = check = None
        if backend is not None:
            solver = solver_label(backend)

            def render(
                moves: dict[int, cudagroup.Move], add: tuple[str, str] | None, scope: Scope = scope
            ) -> list[str]:
                out = [
                    _spec(d, moves.get(i))
                    for i, d in enumerate(scope.deps)
                    if d.platform is None or target_applies(d.platform, solve_platform, on_solve)
                ]
                return [*out, f"{add[0]} {add[1]}.*"] if add else out

            lookup, check, _where = channel_check(
                backend, list(channels) or manifest_channels, target, render, platform=solve_platform
            )
        decision = cudagroup.decide(
            items,
            target,
            allow_major=allow_major,
            lookup=lookup,
            check=check,
            channels=list(channels) or manifest_channels,
            pin_style="{}.*",
        )
        if decision.status == "refused":
            (reported if "crosses a major" in decision.reason else refused).append(f"{scope.name}: {decision.reason}")
            continue
        if decision.status == "ok":
            reasons.append(f"{scope.name}: {decision.reason}")
            continue
        checked.add(decision.checked)
        cuda = decision.cuda
        assert cuda is not None
        for index, move in sorted(decision.moves.items()):
            dep = scope.deps[index]
            old = _shown(dep, None)
            _set(dep, move)
            edits.append(Edit(line=0, old=old, new=_shown(dep, move), reason=move.reason))
        if decision.add:  # beside the package that brings CUDA in, in the same table
            carrier = [d for d, k in zip(scope.deps, kinds, strict=True) if k][-1]
            carrier.table[decision.add[0]] = f"{decision.add[1]}.*"
            edits.append(
                Edit(
                    line=0,
                    old="",
                    new=f'{carrier.where} {decision.add[0]} = "{decision.add[1]}.*"',
                    reason=f"its CUDA comes only through {carrier.key}: pinned to CUDA {decision.add[1]}",
                )
            )
        if sysreq is not None and sysreq > cuda and scope.system_cuda is not None:
            table, where = scope.system_cuda
            text = str(cuda) if "." in str(table["cuda"]) else str(cuda.major)
            said = f"{where} cuda = {str(table['cuda'])!r}".replace("'", '"')
            table["cuda"] = text
            edits.append(Edit(line=0, old=said, new=f'{where} cuda = "{text}"', reason="moves with the group"))
        for platform in scope.rich:  # the platform it is solved on says the same CUDA as its pins
            if platform.cuda > cuda:
                edits += move_platform(platform, cuda, root, prefix)
                noted.add(id(platform.entry))
        reasons.append(f"{scope.name}: {decision.reason}")
    for platform in rich:  # the rest, once each: no scope with CUDA packages moved them
        if platform.subdir != solve_platform or platform.cuda <= target or id(platform.entry) in noted:
            continue
        if platform.cuda.major > target.major:
            said = f"needs a CUDA {platform.cuda.major} driver and this one supports CUDA {target}"
        else:
            said = f"declares CUDA {platform.cuda}, newer than the driver's CUDA {target}; no CUDA pin moves with it"
        reported.append(f"{platform.shown()} {said}; {pixi_words(platform.cuda, target)}: reported, not rewritten")
    notes += [Note(line=None, spec="", message=r) for r in reported + refused]
    if (conflict := sysreq_beside_rich(root, meta)) is not None:
        notes.append(Note(line=None, spec="", message=conflict))
    notes += _pypi_notes(root, target)
    new_raw = raw
    if edits:
        import tomlkit

        new_raw = rename_targets(tomlkit.dumps(doc), edits)
        edits = [replace(e, new=renamed_header(e.new, edits)) for e in edits]
    diff = "".join(
        difflib.unified_diff(
            raw.splitlines(keepends=True), new_raw.splitlines(keepends=True), fromfile=f"a/{name}", tofile=f"b/{name}"
        )
    )
    status: cudagroup.Status = "change" if new_raw != raw else "refused" if refused else "ok"
    summary = refused if status == "refused" else reasons + reported
    reason = "; ".join(summary) or "no CUDA package in this manifest: nothing to change"
    result = EnvFileResult(
        path=name,
        target_cuda=str(target),
        family=None,
        pin=", ".join(e.new for e in edits) or None,
        checked=" / ".join(sorted(checked)) or "not needed",
        edits=tuple(_numbered(edits, new_raw)),
        notes=tuple(notes),
        diff=diff,
        changed=new_raw != raw,
        status=status,
        reason=reason,
        group=tuple(group),
        solver=solver,
    )
    return result, new_raw


def _numbered(edits: list[Edit], text: str) -> list[Edit]:
    """Give each edit the line it landed on: its key's first line under its table header."""
    lines = text.splitlines()
    out = []
    for edit in edits:
        header, _, rest = edit.new.partition("] ")
        if not rest and edit.new.startswith("[") and edit.new.endswith("]"):  # a renamed [target.<name>] table
            out.append(replace(edit, line=next((n + 1 for n, x in enumerate(lines) if x.startswith(edit.new[:-1])), 0)))
            continue
        if rest.startswith("platforms: "):  # a rich platform: the line holding its entry (or the name)
            needle = rest[len("platforms: ") :].strip("'")
            top = next((n for n, line in enumerate(lines) if line.split("#")[0].strip() == header + "]"), 0)
            found = next((n + 1 for n in range(top, len(lines)) if needle in lines[n]), 0)
            out.append(replace(edit, line=found))
            continue
        key = rest.split(" ", 1)[0]
        start = next((n for n, line in enumerate(lines) if line.split("#")[0].strip() == header + "]"), -1)
        found = next(
            (n + 1 for n in range(start + 1, len(lines)) if lines[n].lstrip().startswith((key + " ", key + "="))),
            0,
        )
        out.append(replace(edit, line=found))
    return out


def _raw_system_cuda(scope: Scope, default: Scope) -> str:
    held = scope.system_cuda or default.system_cuda
    return str(held[0]["cuda"]) if held else "?"


def _system_cuda(scope: Scope, name: str) -> CudaVersion | None:
    if scope.system_cuda is None:
        return None
    table, where = scope.system_cuda
    value = str(table["cuda"]).strip()
    try:
        return CudaVersion.parse(value if "." in value else f"{value}.0")
    except Exception:
        raise EnvFileError(f"{name}: {where} cuda = {value!r} is not a CUDA version") from None


def _pypi_notes(root: Any, target: CudaVersion) -> list[Note]:
    """PyPI dependencies with CUDA in them are reported, never changed."""
    notes = []
    tables = [(_table(root, "pypi-dependencies"), "[pypi-dependencies]")]
    for feature, node in (_table(root, "feature") or {}).items():
        tables.append((_table(node, "pypi-dependencies"), f"[feature.{feature}.pypi-dependencies]"))
    for table, where in tables:
        for key in table or {}:
            if str(key).startswith(("nvidia-", "cupy-cuda", "jax-cuda")) or str(key) == "torch":
                said = f"a PyPI dependency: reported, not changed (keep its CUDA <= {target})"
                notes.append(Note(line=None, spec=f"{where} {key}", message=said))
    return notes


def declared_cuda(raw: str, name: str) -> dict[str, CudaVersion]:
    """The CUDA each environment declares in ``system-requirements`` (its features', else the default's).

    pixi solves an environment with ``__cuda`` set to this, so a lock holding a newer major needs a
    newer driver than the manifest says: the relock drift users report.
    """
    root, _prefix = _root(_load(raw, name), name)
    meta = _table(root, "workspace") or _table(root, "project") or {}
    rich = rich_platforms(meta, "platforms", name)

    def declared(names: list[str] | None) -> CudaVersion | None:
        """The newest CUDA the rich platforms an environment is solved on declare."""
        return max((p.cuda for p in rich if applies(p, names)), default=None)

    def sysreq(node: Any) -> CudaVersion | None:
        table = _table(node, "system-requirements")
        value = str(table["cuda"]).strip() if table is not None and "cuda" in table else ""
        try:
            return CudaVersion.parse(value if "." in value else f"{value}.0") if value else None
        except Exception:
            return None

    default = max((v for v in (sysreq(root), declared(None)) if v is not None), default=None)
    features = _table(root, "feature") or {}
    out: dict[str, CudaVersion] = {"default": default} if default else {}
    for env, spec in (_table(root, "environments") or {}).items():
        names = spec if isinstance(spec, list) else spec.get("features", []) if isinstance(spec, dict) else []
        use_default = not (isinstance(spec, dict) and spec.get("no-default-feature"))
        found = [v for f in names if (v := sysreq(features.get(str(f)))) is not None]
        bound = [b for f in names if (b := bound_platforms(features.get(str(f)))) is not None]
        on = declared(sorted({n for b in bound for n in b}) if bound else None)  # features narrow the platforms
        found += [on] if on is not None else []
        if use_default and (own := sysreq(root)) is not None:
            found.append(own)
        if found:
            out[str(env)] = max(found)
    return out


def manifest_platforms(raw: str, name: str) -> list[DeclaredPlatform]:
    """The platforms pixi solves the manifest for, as pixi names them (pixi.lock's aliases map back to these)."""
    root, _prefix = _root(_load(raw, name), name)
    return declared_platforms(root, _table(root, "workspace") or _table(root, "project") or {})
