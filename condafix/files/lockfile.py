"""``condafix lock``: the CUDA each locked env holds, per platform, against the target driver.

Reads pixi.lock (every format version rattler reads: 3 to 7; pixi's own verdicts in ``pixilock``),
conda-lock.yml (version 1) and ``@EXPLICIT`` files. Lockfiles are never rewritten: the report says
which manifest pin to change (the same group rules as ``condafix env``) and what to re-lock with. The locked CUDA is the
``cuda-version`` record's, else ``cudatoolkit``'s, else ``pytorch-cuda``'s, else the CUDA that a
pytorch / jaxlib / cupy / tensorflow build string names, else a CTK component's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import SplitResult, unquote, urlsplit

from condafix.errors import CondafixError, UsageError
from condafix.files import cudagroup
from condafix.knowledge.cuda import CudaVersion, knowledge

if TYPE_CHECKING:
    from condafix.backends.rattler.grammar import PixiLock

Verdict = Literal["ok", "no-cuda", "warning", "mismatch"]
Format = Literal["pixi.lock", "conda-lock", "explicit"]
Locked = list[tuple[str, str, str]]  # (name, version, build)
_FRAMEWORKS = ("pytorch", "libtorch", "jaxlib", "cupy", "cupy-core", "tensorflow", "tensorflow-base")
_PYPI_CUDA = ("nvidia-", "cupy-cuda", "jax-cuda", "torch")


class LockError(CondafixError):
    """The lockfile cannot be read: one line, exit code 2."""

    def __init__(self, summary: str) -> None:
        super().__init__(summary, (), 2)


@dataclass(frozen=True, kw_only=True)
class LockedEnv:
    """One environment on one platform: its locked CUDA and the verdict against the target."""

    env: str
    platform: str
    cuda: str | None
    cuda_from: str | None
    verdict: Verdict
    reason: str
    jit_users: tuple[str, ...] = ()
    pypi_cuda: tuple[str, ...] = ()
    declared: str | None = None  # pixi: the CUDA the manifest declares when the lock holds one it could not run
    runs: str | None = None  # pixi: "runs as resolved", "runs only by accident" or "cannot run" (pixilock)
    lock_platform: str | None = None  # pixi: the platform's key in pixi.lock (a format-7 alias such as p1)
    resolved_cuda: str | None = None  # pixi: the __cuda the lock was solved with (format 7, else the manifest's)
    check: str | None = None  # pixi: its own check of this env for the target driver (CONDA_OVERRIDE_CUDA=…)


@dataclass(frozen=True, kw_only=True)
class LockReport:
    path: str
    format: str
    target_cuda: str
    envs: tuple[LockedEnv, ...]
    status: Literal["ok", "warning", "mismatch"]
    manifest: str | None
    fix: tuple[str, ...]
    relock: str | None

    @property
    def check_exit_code(self) -> int:
        return {"ok": 0, "warning": 1, "mismatch": 2}[self.status]


@dataclass(frozen=True, kw_only=True)
class LockRun:
    """Every file checked against one target (``--cuda``/``--driver``/detection; fleet: the oldest)."""

    target_cuda: str
    target_source: str
    reports: tuple[LockReport, ...]


# ---------------------------------------------------------------- reading


def _split(url: str) -> SplitResult | None:
    """urlsplit, or None for what it rejects (``http://u:pw@[::1/x``: "Invalid IPv6 URL")."""
    try:
        return urlsplit(url)
    except ValueError:
        return None


def _filename_parts(url: str) -> tuple[str, str, str] | None:
    """(name, version, build) from a package URL's file name (conda's ``name-version-build.ext``)."""
    split = _split(url)
    if split is None:
        return None
    name = unquote(split.path).rsplit("/", 1)[-1]
    for ext in (".conda", ".tar.bz2"):
        if name.endswith(ext):
            parts = name[: -len(ext)].rsplit("-", 2)
            return (parts[0].lower(), parts[1], parts[2]) if len(parts) == 3 and all(parts) else None
    return None


def _subdir(url: str) -> str | None:
    split = _split(url)
    parts = unquote(split.path).rstrip("/").split("/") if split is not None else []
    return parts[-2] if len(parts) >= 2 else None


def read_explicit(text: str, name: str) -> list[tuple[str, str, Locked, list[str]]]:
    """An ``@EXPLICIT`` file: one env, its platform from the header or the package URLs."""
    platform: str | None = None
    records: Locked = []
    started = False
    for number, line in enumerate(text.splitlines(), 1):
        body = line.strip()
        if body.startswith("# platform:"):
            platform = body.split(":", 1)[1].strip()
        if body == "@EXPLICIT":
            started = True
            continue
        if not started or not body or body.startswith("#"):
            continue
        url = body.split("#", 1)[0].strip()
        parts = _filename_parts(url)
        split = _split(url)
        if parts is None or split is None or split.scheme not in ("http", "https", "file"):
            raise LockError(f"{name}:{number}: not a package URL: {body[:120]!r}")
        records.append(parts)
        if platform is None and _subdir(url) not in (None, "noarch"):
            platform = _subdir(url)
    if not started:
        raise LockError(f"{name}: not an @EXPLICIT file (no @EXPLICIT line)")
    return [(Path(name).stem, platform or "unknown", records, [])]


def read_conda_lock(doc: dict[str, Any], name: str) -> list[tuple[str, str, Locked, list[str]]]:
    """conda-lock.yml version 1: the ``main`` category, then main plus each optional category."""
    packages = doc.get("package")
    if doc.get("version") != 1 or not isinstance(packages, list):
        raise LockError(f"{name}: not a conda-lock version 1 file (`version: 1` and a `package` list)")
    by: dict[tuple[str, str], tuple[Locked, list[str]]] = {}
    for index, pkg in enumerate(packages):
        if not isinstance(pkg, dict) or not all(isinstance(pkg.get(k), str) for k in ("name", "platform", "url")):
            raise LockError(f"{name}: package {index + 1}: needs name, platform and url strings")
        slot = by.setdefault((str(pkg.get("category", "main")), pkg["platform"]), ([], []))
        if pkg.get("manager", "conda") == "pip":
            slot[1].append(pkg["name"].lower())
            continue
        parts = _filename_parts(pkg["url"])
        if parts is None:
            raise LockError(f"{name}: package {pkg['name']}: url does not name a conda package")
        slot[0].append(parts)
    categories = sorted({c for c, _ in by} - {"main"})
    platforms = sorted({p for _, p in by})
    out = []
    for env in ["main", *categories]:
        for platform in platforms:
            conda, pypi = list(by.get(("main", platform), ([], []))[0]), list(by.get(("main", platform), ([], []))[1])
            if env != "main":
                extra = by.get((env, platform), ([], []))
                conda += extra[0]
                pypi += extra[1]
            out.append(("main" if env == "main" else f"main+{env}", platform, conda, pypi))
    return out


def read_lockfile(path: Path) -> tuple[Format, list[tuple[str, str, Locked, list[str]]], PixiLock | None]:
    """Detect the format and read every (env, platform), and a pixi.lock's platforms; one clear line on bad input."""
    import yaml

    name = str(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise UsageError(f"{name}: no such file") from None
    except UnicodeDecodeError as exc:
        raise LockError(f"{name}: not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise UsageError(f"{name}: {exc.strerror or exc}") from None
    if any(line.strip() == "@EXPLICIT" for line in text.splitlines()):
        return "explicit", read_explicit(text, name), None
    try:
        doc = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"{name}:{mark.line + 1}:{mark.column + 1}" if mark else name
        raise LockError(f"{where}: invalid YAML: {exc.problem}") from None
    except yaml.YAMLError as exc:
        raise LockError(f"{name}: invalid YAML: {str(exc).splitlines()[0]}") from None
    if isinstance(doc, dict) and "environments" in doc and "version" in doc:
        from condafix.backends.rattler.grammar import read_pixi_lock

        try:
            lock = read_pixi_lock(path)
        except ValueError as exc:
            raise LockError(
                f"{name}: not a pixi.lock rattler can read (version {doc.get('version')!r}): {exc}"
            ) from None
        return "pixi.lock", list(lock.envs), lock
    if isinstance(doc, dict) and "package" in doc and "metadata" in doc:
        return "conda-lock", read_conda_lock(doc, name), None
    raise LockError(f"{name}: not a lockfile (pixi.lock, conda-lock.yml or an @EXPLICIT file)")


# ---------------------------------------------------------------- judging


def locked_cuda(records: Locked) -> tuple[CudaVersion | None, str | None]:
    """The env's CUDA and the record it comes from (see the module docstring for the order)."""
    by = {name: (version, build) for name, version, build in records}
    for name in ("cuda-version", "cudatoolkit", "pytorch-cuda"):
        if name in by:
            try:
                return CudaVersion.parse(by[name][0]), f"{name} {by[name][0]}"
            except CondafixError:
                continue
    for name in _FRAMEWORKS:
        if name in by:
            found = cudagroup.build_cuda(by[name][1])
            if found:
                text = by[name][1][found[1].start : found[1].end]
                return found[0], f"{name} {by[name][0]} ({text} build)"
    for name, (version, build) in sorted(by.items()):
        if cudagroup.kind_of(name, build) in ("component", "metapackage"):
            cuda = cudagroup.cuda_of_record(name, version, build)
            if cuda:
                return cuda, f"{name} {version}"
    return None, None


def judge(env: str, platform: str, records: Locked, pypi: Sequence[str], target: CudaVersion) -> LockedEnv:
    from condafix.diagnose.compilepath import driver_jit_users

    cuda, source = locked_cuda(records)
    cuda_pypi = tuple(p for p in pypi if p.startswith(_PYPI_CUDA))
    if cuda is None:
        why = "no CUDA package in this env"
        if cuda_pypi:
            why += f" (PyPI packages {', '.join(cuda_pypi)} are reported, not judged)"
        return LockedEnv(
            env=env,
            platform=platform,
            cuda=None,
            cuda_from=None,
            verdict="no-cuda",
            reason=why,
            jit_users=(),
            pypi_cuda=cuda_pypi,
        )
    jit = tuple(driver_jit_users({name: version for name, version, _b in records}))

    def judged(verdict: Verdict, reason: str) -> LockedEnv:
        return LockedEnv(
            env=env, platform=platform, cuda=str(cuda), cuda_from=source, verdict=verdict, reason=reason,
            jit_users=jit, pypi_cuda=cuda_pypi,
        )  # fmt: skip

    if cuda.major < target.major or cuda <= target:
        return judged("ok", f"CUDA {cuda} runs on a CUDA {target} driver")
    need = knowledge().min_driver_for(cuda)
    if cuda.major > target.major:
        return judged(
            "mismatch", f"CUDA {cuda} needs a CUDA {cuda.major} driver (>= {need}); this one supports CUDA {target}"
        )
    if jit:
        why = (
            f"{', '.join(jit)} JIT PTX through the driver: 'Unsupported .version' on CUDA {target} "
            f"(needs driver >= {need}, or CUDA <= {target})"
        )
        return judged("mismatch", why)
    return judged("warning", f"SASS runs on CUDA {target} (minor version compatibility); no PTX-JIT user is locked")


# ---------------------------------------------------------------- fixes


def pixi_manifest(lock: Path) -> Path | None:
    for candidate in (lock.with_name("pixi.toml"), lock.with_name("pyproject.toml")):
        try:
            if candidate.is_file() and (candidate.name == "pixi.toml" or "[tool.pixi" in candidate.read_text()):
                return candidate
        except OSError:
            continue
    return None


def _manifest_fix(manifest: Path, target: CudaVersion, pixi: bool) -> list[str]:
    """The pins ``condafix env`` would change in the manifest (offline, same group rules)."""
    try:
        raw = manifest.read_text(encoding="utf-8")
        if pixi:
            from condafix.files.pixifile import plan_manifest

            result, _new = plan_manifest(raw, str(manifest), target)
        else:
            from condafix.files.envfile import plan_file

            result, _new = plan_file(raw, str(manifest), target)
    except (CondafixError, OSError) as exc:
        return [f"{manifest}: {exc}"]
    lines = [f"{manifest}:{e.line}: {_change(e.old.strip(), e.new.strip())}" for e in result.edits]
    lines += [f"{manifest}: {n.message}" for n in result.notes if not n.spec]
    if result.status == "refused":
        lines.append(f"{manifest}: {result.reason}")
    return lines


def _change(old: str, new: str) -> str:
    """``old -> new``, saying a shared ``[table] key =`` once (pixi edits carry their table)."""
    if not old:
        return f"add {new}"
    head = new.partition(" = ")[0]
    if "] platforms: " in new:  # a rich platform or a feature's reference to one: say the table once
        head, _, rest = new.partition(": ")
        return f"{old} -> {rest}" if old.startswith(head + ": ") else f"{old} -> {new}"
    if head and old.startswith(head + " = "):
        return f"{old} -> {new[len(head) + 3 :]}"
    return f"{old} -> {new}"


def _fix(
    fmt: Format, path: Path, doc_sources: Sequence[str], target: CudaVersion, platforms: Sequence[str]
) -> tuple[str | None, list[str], str | None]:
    """(manifest, lines saying which pin to change, the re-lock command)."""
    if fmt == "pixi.lock":
        manifest = pixi_manifest(path)
        relock = "pixi lock"
        if manifest is None:
            return None, [f'pin cuda-version = "{target}.*" in the manifest of each env listed, then re-lock'], relock
        lines = _manifest_fix(manifest, target, pixi=True)
        return str(manifest), lines, f"condafix env {manifest} --cuda {target} --write && {relock}"
    if fmt == "conda-lock":
        sources = [path.parent / s for s in doc_sources] or [path.with_name("environment.yml")]
        found = [s for s in sources if s.is_file()]
        plats = " ".join(f"-p {p}" for p in platforms)
        files = " ".join(f"-f {s.name}" for s in found) or "-f environment.yml"
        relock = f"conda-lock lock {files} {plats}".strip()
        if not found:
            return None, [f"pin cuda-version={target} in the lock's source file, then re-lock"], relock
        lines = [line for s in found for line in _manifest_fix(s, target, pixi=False)]
        return str(found[0]), lines, f"condafix env {found[0]} --cuda {target} --write && {relock}"
    return (
        None,
        [
            "an @EXPLICIT file is a frozen list: fix the env it came from "
            f"(`condafix cuda -p PREFIX --cuda {target} --apply`) or its environment.yml "
            f"(`condafix env environment.yml --cuda {target} --write`)"
        ],
        f"conda list -p PREFIX --explicit --md5 > {path.name}",
    )


def check_file(path: Path, target: CudaVersion) -> LockReport:
    """Judge every env and platform of one lockfile; never writes."""
    fmt, envs, pixi = read_lockfile(path)
    judged = tuple(
        judge(env, platform, records, pypi, target)
        for env, platform, records, pypi in sorted(envs, key=lambda e: e[:2])
    )
    if pixi is not None:
        from condafix.files.pixilock import pixi_verdicts

        judged = pixi_verdicts(judged, pixi, pixi_manifest(path), target, judge)
    verdicts = {e.verdict for e in judged}
    status: Literal["ok", "warning", "mismatch"] = (
        "mismatch" if "mismatch" in verdicts else "warning" if "warning" in verdicts else "ok"
    )
    manifest: str | None = None
    fix: list[str] = []
    relock: str | None = None
    if status != "ok":
        sources: list[str] = []
        if fmt == "conda-lock":
            import yaml

            meta = (yaml.safe_load(path.read_text()) or {}).get("metadata") or {}
            sources = [str(s) for s in meta.get("sources") or [] if isinstance(s, str)]
        platforms = sorted({e.platform for e in judged if e.verdict in ("warning", "mismatch")})
        manifest, fix, relock = _fix(fmt, path, sources, target, platforms)
        drifted = [e for e in judged if e.declared]
        if drifted and all(e.declared or e.verdict in ("ok", "no-cuda") for e in judged):
            pins = sorted({_drift_pin(e) for e in drifted})
            fix = [
                f'{manifest or "the manifest"}: pin cuda-version = "{pin}.*" in the dependencies of '
                f"{', '.join(sorted({e.env for e in drifted if _drift_pin(e) == pin}))} to keep the declared "
                f"CUDA {pin}, or raise the CUDA the manifest declares (the platform's cuda, or "
                "[system-requirements] cuda) to the one the lock now holds"
                for pin in pins
            ]
            relock = "pixi lock"
    label = {"pixi.lock": "pixi.lock", "conda-lock": "conda-lock v1", "explicit": "@EXPLICIT"}[fmt]
    return LockReport(
        path=str(path),
        format=label,
        target_cuda=str(target),
        envs=judged,
        status=status,
        manifest=manifest,
        fix=tuple(fix),
        relock=relock,
    )


def _drift_pin(env: LockedEnv) -> str:
    """The pin that keeps a drifted env on its declared CUDA: the major across majors, else major.minor."""
    declared = env.declared or "0"
    said = CudaVersion.parse(declared if "." in declared else f"{declared}.0")
    held = CudaVersion.parse(env.cuda or "0.0")
    return str(said.major) if held.major != said.major else str(said)


def default_files() -> list[str]:
    found = [n for n in ("pixi.lock", "conda-lock.yml", "conda-lock.yaml") if Path(n).is_file()]
    if not found:
        raise UsageError("no pixi.lock or conda-lock.yml here; pass the lockfile(s) to check")
    return found
