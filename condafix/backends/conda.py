"""conda's own configured solver behind the solver boundary (libmamba by default, classic, rattler).

Why: inside a conda install the fix must be planned with the user's solver, channels,
``.condarc`` (channel_alias, custom_channels, mirrors, auth), ``pkgs_dirs`` and ``conda-meta/pinned``,
and applied with conda's own transaction, so that the history, the package cache and every later
``conda install`` agree with it. This module and ``rattler_backend`` are the only ones that import
a package manager.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

from condafix.change.installer import Installer, InstallRequest, Reinstaller, Step, before_writing, cancel_requested
from condafix.errors import CondafixError, Hint
from condafix.plan.solver import Record, SolveFailed

_UNSATISFIABLE = (
    "UnsatisfiableError",
    "LibMambaUnsatisfiableError",
    "RattlerUnsatisfiableError",  # conda-rattler-solver 0.2
    "ResolvePackageNotFound",
    "PackagesNotFoundError",
    "SpecsConfigurationConflictError",
)


@contextlib.contextmanager
def cuda_override(cuda: str) -> Iterator[None]:
    """conda's documented way to plan for another driver (``CONDA_OVERRIDE_CUDA``), scoped to one solve."""
    saved = os.environ.get("CONDA_OVERRIDE_CUDA")
    os.environ["CONDA_OVERRIDE_CUDA"] = cuda
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("CONDA_OVERRIDE_CUDA", None)
        else:
            os.environ["CONDA_OVERRIDE_CUDA"] = saved


SCRATCH_SHOWN = "(a new environment, solved only: nothing is installed)"


@contextlib.contextmanager
def _conda_output(relay: Callable[[], TextIO] | None, scratch: str | None = None) -> Iterator[None]:
    """conda's reporters print to stdout; standalone, keep stdout for condafix's own result (--json).

    ``relay``: the stream the command layer lends for them (its stderr); None: leave conda's stdout alone.
    ``scratch``: the empty prefix of a solve without an env; conda names it as its "Target prefix", which
    would send the user looking for a temp folder, so it is shown as what it is.
    """
    if relay is None:
        yield
        return
    from condafix.redact import RedactingWriter

    def rewrite(text: str) -> str:
        return text.replace(scratch, SCRATCH_SHOWN) if scratch else text

    out = RedactingWriter(relay, rewrite)  # conda's reporters quote channel URLs: through the redacting edge
    try:
        with contextlib.redirect_stdout(out):
            yield
    finally:
        out.flush()


@contextlib.contextmanager
def no_aggressive_updates(context: Any) -> Iterator[None]:
    """``aggressive_update_packages: []`` for condafix's solves only: conda otherwise updates ca-certificates,
    certifi and openssl in every install, and a CUDA fix must hold only what the fix needs.

    conda reads the setting through its context's parameter cache (``Configuration._cache_``, the same
    cache ``reset_context`` clears); the entry is set for the solve and put back after it.
    """
    cache = getattr(context, "_cache_", None)
    key = "_aggressive_update_packages"
    if not isinstance(cache, dict):  # another conda: leave its setting alone (the plan lists what moves)
        yield
        return
    missing = object()
    saved = cache.get(key, missing)
    cache[key] = ()
    try:
        yield
    finally:
        if saved is missing:
            cache.pop(key, None)
        else:
            cache[key] = saved


def to_record(record: Any) -> Record:
    """A conda PackageRecord / PrefixRecord as the planner's neutral record (raw channel URL kept)."""
    channel = getattr(record, "channel", None)
    return Record(
        name=str(record.name),
        version=str(record.version),
        build=str(record.build),
        subdir=str(getattr(record, "subdir", "") or ""),
        channel=str(channel.base_url) if channel is not None and getattr(channel, "base_url", None) else None,
        url=str(record.url) if getattr(record, "url", None) else None,
        size=int(record.size) if getattr(record, "size", None) else None,
        depends=tuple(str(d) for d in (record.depends or ())),
        constrains=tuple(str(c) for c in (record.constrains or ())),
    )


def _error(exc: Exception) -> CondafixError:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return CondafixError(
        summary=f"conda: {type(exc).__name__}: {' / '.join(lines[:4])}",
        hints=(Hint(code="conda_config", text="check the channels and settings with `conda config --show channels`"),),
    )


@contextlib.contextmanager
def _empty_prefix() -> Iterator[str]:
    """Where conda solves a new environment: a path that holds nothing (conda reads no records, history
    or pins there; the solve writes nothing)."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="condafix-solve-") as root:
        yield str(Path(root) / "env")


def _split_specs(pins: Sequence[str], specs: Sequence[str], installed: Sequence[Any]) -> tuple[list[Any], list[Any]]:
    """(asked, held): the MatchSpecs to hand conda, and those the installed set already satisfies.

    A spec the installed package already meets is not handed to conda: conda reads a requested spec
    of an installed package as "update it" (``numpy`` or ``numpy>=2`` would move numpy to its newest),
    where the planner means "keep it meeting this". Such specs are checked on the answer instead.
    The pins are always asked: moving them is the point of the solve.
    """
    from conda.models.match_spec import MatchSpec

    by_name = {str(r.name): r for r in installed}
    asked = [MatchSpec(p) for p in dict.fromkeys(pins)]
    held: list[Any] = []
    for spec in dict.fromkeys(s for s in specs if s not in pins):
        match = MatchSpec(spec)
        record = by_name.get(str(match.name))
        (held if record is not None and match.match(record) else asked).append(match)
    return asked, held


def _before_linking(txn: Any) -> None:
    """conda extracted every new build: hand what each writes (its paths.json) to the change path first."""
    for setup in txn.prefix_setups.values():
        for record in setup.link_precs:
            for cache in _pkgs_dirs():
                paths = Path(cache) / f"{record.name}-{record.version}-{record.build}" / "info" / "paths.json"
                if paths.is_file():
                    before_writing(_paths_of(paths))
                    break


def _pkgs_dirs() -> tuple[str, ...]:
    from conda.base.context import context

    return tuple(str(p) for p in context.pkgs_dirs)


def _paths_of(paths_json: Path) -> list[str]:
    import json

    try:
        data = json.loads(paths_json.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    entries = data.get("paths") if isinstance(data, dict) else None
    return [e["_path"] for e in entries or () if isinstance(e, dict) and isinstance(e.get("_path"), str)]


def _nowhere() -> TextIO:
    return io.StringIO()  # a standalone caller that lent no stream: conda's reporters go nowhere, never stdout


class CondaBackend:
    """conda's configured solver, channels and transaction (history and cache are conda's).

    ``cuda_arch`` cannot be said to conda: conda 26.7.1 has ``__cuda`` (``CONDA_OVERRIDE_CUDA``) but no
    ``__cuda_arch`` virtual package (no plugin of it defines one; ``CONDA_OVERRIDE_CUDA_ARCH`` changes
    nothing), so a solve here sees no ``__cuda_arch``, exactly as the user's own ``conda install``.
    """

    name = "conda"
    #: the planner hands ``solve`` a range (``cuda-version >=12.0,<12.5.0a0``) and conda's solver picks the
    #: newest minor that solves: one solve, the channel loaded once (``query`` would load it a second time)
    picks_newest = True

    def __init__(
        self, *, prefix: Path | None, offline: bool, configured: bool, relay: Callable[[], TextIO] | None = None
    ) -> None:
        """``relay``: standalone, where conda's reporters write (lent by the command layer; None: nowhere)."""
        from conda.base.context import context, reset_context

        if not configured:  # standalone: read .condarc and CONDA_* exactly as conda's CLI does
            import argparse

            reset_context(argparse_args=argparse.Namespace(offline=offline) if offline else None)
        self.context = context
        self.prefix = prefix
        self.offline = offline
        self.relay = None if configured else relay or _nowhere
        self.solver_name = str(context.solver)

    @property
    def label(self) -> str:
        return f"conda ({self.solver_name})"

    def channels(self, requested: Sequence[str], env_channels: Sequence[str]) -> tuple[str, ...]:
        """``-c`` values as given (conda expands names with channel_alias), else the user's channels."""
        if requested:
            return tuple(dict.fromkeys(requested))
        return tuple(str(c) for c in self.context.channels)

    def cache_age(self, channels: Sequence[str]) -> float | None:
        return None  # conda's --offline reads its own cache and says what is missing

    def _native_installed(self) -> list[Any]:
        from conda.core.prefix_data import PrefixData

        if self.prefix is None:  # a new environment: nothing installed
            return []
        return list(PrefixData(str(self.prefix)).iter_records())

    def installed(self) -> list[Record]:
        return [to_record(r) for r in self._native_installed()]

    def _subdirs(self, platform: str) -> tuple[str, ...]:
        return (platform, "noarch")

    def query(self, channels: Sequence[str], names: Sequence[str], *, platform: str) -> list[Record]:
        from conda.core.subdir_data import SubdirData
        from conda.exceptions import CondaError
        from conda.models.match_spec import MatchSpec

        found: list[Record] = []
        with _conda_output(self.relay):
            for name in names:
                try:
                    records = SubdirData.query_all(MatchSpec(name), channels, self._subdirs(platform))
                except (CondaError, OSError) as exc:  # requests' HTTPError is an OSError
                    raise _error(exc) from None
                found += [to_record(r) for r in records]
        return found

    def _solver(self, channels: Sequence[str], platform: str, pins: Sequence[str], *, prefix: str | None = None) -> Any:
        """conda's configured solver for ``conda install PINS`` (``conda create`` in ``prefix`` when given)."""
        from conda.models.match_spec import MatchSpec

        solver_type = self.context.plugin_manager.get_cached_solver_backend()
        return solver_type(
            prefix or str(self.prefix),
            list(channels),
            self._subdirs(platform),
            specs_to_add=[MatchSpec(p) for p in pins],
            command="create" if prefix else "install",
        )

    def solve(
        self,
        *,
        channels: Sequence[str],
        platform: str,
        cuda: str,
        cuda_arch: str | None,
        pins: Sequence[str],
        specs: Sequence[str],
    ) -> list[Record]:
        """``conda install PINS SPECS`` as conda would solve it, with ``__cuda`` set to the target.

        Every spec holds in the answer: the ones the installed set does not meet are handed to conda;
        the ones it meets are checked on conda's answer (handed over, conda would update them).
        Without a prefix this is ``conda create SPECS PINS`` in an empty prefix: the user's solver,
        channels and ``.condarc`` (``pinned_packages`` included), nothing installed. ``cuda_arch``
        is not expressible to conda (no ``__cuda_arch``; see the class).
        """
        from conda.exceptions import CondaError

        installed = self._native_installed()
        with cuda_override(cuda), no_aggressive_updates(self.context), contextlib.ExitStack() as stack:
            where = stack.enter_context(_empty_prefix()) if self.prefix is None else None
            stack.enter_context(_conda_output(self.relay, where))
            try:
                asked, held = _split_specs(pins, specs, installed)
                final = self._solver(channels, platform, [str(m) for m in asked], prefix=where).solve_final_state()
            except CondaError as exc:
                if type(exc).__name__ in _UNSATISFIABLE:
                    raise SolveFailed(str(exc)) from None
                raise _error(exc) from None
            except OSError as exc:  # a channel's HTTP error escapes conda as requests' HTTPError
                raise _error(exc) from None
        broken = [str(m) for m in held if not any(m.match(r) for r in final)]
        if broken:
            raise SolveFailed(f"conda's solution breaks specs the env keeps: {', '.join(broken)}")
        return [to_record(r) for r in final]

    def version_less(self, left: str, right: str) -> bool:
        from conda.models.version import VersionOrder

        return bool(VersionOrder(left) < VersionOrder(right))

    def spec_matches(self, spec: str, name: str, version: str) -> bool:
        from conda.exceptions import CondaError
        from conda.models.match_spec import MatchSpec

        try:
            match = MatchSpec(spec)
        except CondaError:
            return True
        if match.name != name or match.version is None:
            return True
        return bool(match.version.match(version))

    def installer(self, request: InstallRequest) -> Installer:
        """conda's own transaction (``change.apply`` wraps it in the lock, snapshot and journal); conda
        writes the history and uses its own package cache."""
        platform = next((c.subdir for c in self.installed() if c.subdir and c.subdir != "noarch"), None)

        moved: list[str] = []

        def install(_step: Step) -> None:
            from conda.exceptions import CondaError

            with cuda_override(request.cuda), _conda_output(self.relay):
                try:
                    txn = self._solver(request.channels, platform or self.context.subdir, request.pins)
                    txn = txn.solve_for_transaction()
                    for setup in txn.prefix_setups.values():  # what conda's own transaction moves
                        moved.extend(str(r.name) for r in (*setup.unlink_precs, *setup.link_precs))
                    txn.download_and_extract()
                    if cancel_requested():  # Ctrl-C during the downloads: stop before conda links anything
                        raise KeyboardInterrupt
                    _before_linking(txn)
                    txn.execute()
                except (CondaError, OSError) as exc:  # requests' HTTPError is an OSError
                    raise _error(exc) from None

        return Installer(
            label=self.label,
            install=install,
            writes_history=True,
            spec_matches=self.spec_matches,
            caches=tuple(str(p) for p in self.context.pkgs_dirs),
            moved=lambda: tuple(moved),
        )


def reinstaller(*, configured: bool) -> Reinstaller:
    """A restore's reinstall through conda's own transaction (its package cache, channels, history), so a
    rollback inside conda works beside conda-rattler-solver's py-rattler 0.26.

    ``configured``: conda's context is set up already (the plugin); standalone it is read as conda's CLI
    reads it, once, when a reinstall is needed."""

    def context() -> Any:
        from conda.base.context import context, reset_context

        if not configured and not getattr(context, "_condafix_ready", False):
            reset_context()
            context._condafix_ready = True
        return context

    def saved(records_dir: Path) -> list[Any]:
        import json

        from conda.models.records import PackageRecord, PrefixRecord

        out = []
        for path in sorted(records_dir.glob("*.json")):
            data = json.loads(path.read_text(encoding="utf-8"))
            out.append(PackageRecord.from_objects(PrefixRecord(**data)))
        return out

    def unavailable(records_dir: Path, names: Sequence[str]) -> list[str]:
        context()
        return [f"{r.name} {r.version} {r.build}" for r in saved(records_dir) if r.name in names and not _obtainable(r)]

    def reinstall(prefix: Path, records_dir: Path) -> None:
        from conda.core.link import PrefixSetup, UnlinkLinkTransaction
        from conda.core.prefix_data import PrefixData
        from conda.exceptions import CondaError

        context()
        wanted = {(r.name, r.version, r.build): r for r in saved(records_dir)}
        current = {(r.name, r.version, r.build): r for r in PrefixData(str(prefix)).iter_records()}
        unlink = tuple(r for k, r in current.items() if k not in wanted)
        link = tuple(r for k, r in wanted.items() if k not in current)
        if not (unlink or link):
            return
        try:
            txn = UnlinkLinkTransaction(PrefixSetup(str(prefix), unlink, link, (), (), ()))
            txn.download_and_extract()
            txn.execute()
        except (CondaError, OSError) as exc:
            raise _error(exc) from None

    return Reinstaller(label="conda", unavailable=unavailable, reinstall=reinstall, writes_history=True)


def _obtainable(record: Any) -> bool:
    """In one of conda's package caches, else at its URL (a local file, or an HTTP HEAD that answers)."""
    from urllib.parse import unquote, urlsplit

    from conda.core.package_cache_data import PackageCacheData

    if any(PackageCacheData.query_all(record)):
        return True
    url = str(getattr(record, "url", "") or "")
    parts = urlsplit(url)
    if parts.scheme == "file":
        return Path(unquote(parts.path)).is_file()
    if parts.scheme in ("http", "https"):
        from conda.gateways.connection.session import get_session

        try:
            return bool(get_session(url).head(url, timeout=15, allow_redirects=True).status_code < 400)
        except Exception:  # requests' errors: the channel cannot be reached, so it is not obtainable
            return False
    return False
