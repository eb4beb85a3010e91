"""conda's own configuration, read the way conda reads it: envs dirs, package caches, channel names.

condafix runs beside conda, not inside it, so it reads conda's condarc search path and the
``CONDA_*`` variables itself (ruamel.yaml as conda parses them, no conda import): ``-n NAME`` must find the env conda
finds, the package cache conda filled must serve an offline rollback, and ``-c conda-forge`` must
mean what ``channel_alias``/``custom_channels`` make it mean.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from condafix.errors import Hint, UsageError
from condafix.findings import Finding

DEFAULT_ALIAS = "https://conda.anaconda.org"


@dataclass(frozen=True, kw_only=True)
class CondaConfig:
    """The parts of conda's configuration condafix needs."""

    root_prefix: Path | None
    envs_dirs: tuple[Path, ...]
    pkgs_dirs: tuple[Path, ...]
    channel_alias: str
    custom_channels: tuple[tuple[str, str], ...]
    channels: tuple[str, ...] = ()  # merged as conda merges them (``merge_sequence``)
    proxy_servers: tuple[tuple[str, str | None], ...] = ()  # likewise (``merge_map``)


def root_prefix(env: Mapping[str, str]) -> Path | None:
    """conda's base env: ``$CONDA_ROOT``, else the install ``$CONDA_EXE`` lives in, else mamba's root."""
    if env.get("CONDA_ROOT"):
        return Path(env["CONDA_ROOT"])
    exe = env.get("CONDA_EXE")
    if exe and Path(exe).parent.name in ("bin", "condabin", "Scripts"):
        return Path(exe).parent.parent
    if env.get("MAMBA_ROOT_PREFIX"):
        return Path(env["MAMBA_ROOT_PREFIX"])
    return None


def search_path(env: Mapping[str, str], root: Path | None) -> list[Path]:
    """conda's condarc search path (conda 26.7 ``conda/base/constants.py`` SEARCH_PATH), lowest priority
    first, expanded as ``Configuration._expand_search_path`` expands it: a file counts when it is named
    ``.condarc``/``condarc`` or ends in ``.yml``/``.yaml``; a directory contributes its ``*.yml``/``*.yaml``
    files in name order; an entry whose variable is unset is skipped."""
    home = Path(env.get("HOME") or Path.home())
    dirs: list[Path | None] = [Path("/etc/conda"), Path("/var/lib/conda"), root]
    xdg = env.get("XDG_CONFIG_HOME")
    dirs += [Path(xdg) / "conda" if xdg else None, home / ".config" / "conda", home / ".conda"]
    entries: list[Path] = []
    for base in [d for d in dirs if d is not None]:
        entries += [base / ".condarc", base / "condarc", base / "condarc.d"]
    entries.append(home / ".condarc")
    if env.get("CONDA_PREFIX"):
        prefix = Path(env["CONDA_PREFIX"])
        entries += [prefix / ".condarc", prefix / "condarc", prefix / "condarc.d"]
    if env.get("CONDARC"):
        entries.append(Path(env["CONDARC"]).expanduser())
    places: list[Path] = []
    for entry in dict.fromkeys(entries):
        if entry.is_dir():
            places += _drop_in(entry)
        elif entry.name in _CONDARC_NAMES or entry.suffix in _YAML_SUFFIXES:
            places.append(entry)
    return list(dict.fromkeys(places))


_CONDARC_NAMES = (".condarc", "condarc")
_YAML_SUFFIXES = (".yml", ".yaml")


def _drop_in(directory: Path) -> list[Path]:
    try:
        return sorted(p for p in directory.iterdir() if p.suffix in _YAML_SUFFIXES and p.is_file())
    except OSError:
        return []


class CondarcError(UsageError):
    """A condarc conda cannot read: not UTF-8 or not YAML. conda 26.7.1 stops on it (an unexpected-error
    report, exit 1, for every command), so condafix never plans or writes with a configuration conda lacks."""

    def __init__(self, path: Path, why: str) -> None:
        hint = Hint(code="fix_condarc", text=f"fix or remove {path}: every conda command fails on it")
        super().__init__(f"{path}: {why}; conda cannot read its configuration either", (hint,))
        self.path = path


def _load_yaml(path: Path) -> Any:
    """A condarc parsed as conda parses it (ruamel.yaml round-trip, so ``#!final``/``#!top`` comments
    survive): the mapping, {} when empty or unreadable; :class:`CondarcError` when not UTF-8 or not YAML."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import MarkedYAMLError, YAMLError

    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CondarcError(path, f"not UTF-8 text (byte {exc.start})") from None
    except OSError:
        return {}
    try:
        data = YAML(typ="rt").load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "somewhere"
        raise CondarcError(path, f"invalid YAML ({exc.problem or exc.context}, at {where})") from None
    except (YAMLError, RecursionError, ValueError) as exc:
        raise CondarcError(path, f"invalid YAML ({type(exc).__name__})") from None
    return data if isinstance(data, dict) else {}


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, str):
        return str(value)
    return value


def _scan(env: Mapping[str, str], root: Path | None) -> tuple[list[tuple[Path, Any]], list[CondarcError]]:
    """Every condarc conda reads, parsed (ruamel's commented mapping), and those conda cannot read, each as
    the error naming it: :func:`files` leaves those out (doctor and rollback still run), :func:`unreadable`
    names them (``condafix cuda``/``env`` refuse)."""
    found, errors = [], []
    for path in search_path(env, root):
        if path.is_file():
            try:
                found.append((path, _load_yaml(path)))
            except CondarcError as exc:
                errors.append(exc)
    return found, errors


def read_file(path: Path) -> dict[str, Any]:
    """One condarc's mapping as plain values ({} when empty or unreadable); :class:`CondarcError` when
    conda cannot read it."""
    return dict(_plain(_load_yaml(path)))


def unreadable(env: Mapping[str, str] | None = None) -> list[CondarcError]:
    """The condarc files on conda's search path that conda cannot read, each as the error naming it."""
    env = os.environ if env is None else env
    return _scan(env, root_prefix(env))[1]


def refuse_unreadable(env: Mapping[str, str] | None = None) -> None:
    """For the commands that plan or write with conda's configuration: the first unreadable condarc
    is one line (exit 2) before anything is read or changed."""
    errors = unreadable(env)
    if errors:
        raise errors[0]


def finding(error: CondarcError) -> Finding:
    """The one :class:`Finding` for a condarc conda cannot read (doctor and proxy still run)."""
    return Finding(
        code="condarc_invalid", severity="warning", message=error.summary, hints=error.hints, component=str(error.path)
    )


def files(env: Mapping[str, str] | None = None) -> list[tuple[Path, dict[str, Any]]]:
    """(path, contents) of every condarc conda reads here, lowest priority first: the one reader."""
    env = os.environ if env is None else env
    return [(path, _plain(data)) for path, data in _scan(env, root_prefix(env))[0]]


def _list(value: object) -> list[str]:
    return [str(v) for v in value if isinstance(v, (str, int, float))] if isinstance(value, list) else []


def _expand(text: str, env: Mapping[str, str]) -> Path:
    home = env.get("HOME") or str(Path.home())
    text = text.replace("~", home, 1) if text.startswith("~") else text
    return Path(os.path.expandvars(text))


def load(env: Mapping[str, str] | None = None) -> CondaConfig:
    """Env vars beat files; among files the later (more specific) one wins, lists keep every entry."""
    env = os.environ if env is None else env
    root = root_prefix(env)
    sources = _scan(env, root)[0]
    files = [_plain(data) for _path, data in sources]
    home = Path(env.get("HOME") or Path.home())

    def merged(key: str) -> list[str]:
        out: list[str] = []
        for data in reversed(files):
            out += [v for v in _list(data.get(key)) if v not in out]
        return out

    def scalar(key: str) -> str | None:
        for data in reversed(files):
            if isinstance(data.get(key), str) and data[key]:
                return str(data[key])
        return None

    envs_var = [p for var in ("CONDA_ENVS_PATH", "CONDA_ENVS_DIRS") for p in _split(env.get(var, ""), os.pathsep)]
    envs = [_expand(p, env) for p in envs_var or merged("envs_dirs")]
    defaults = [root / "envs"] if root is not None else []
    envs += [*defaults, home / ".conda" / "envs"]
    pkgs = [_expand(p, env) for p in _split(env.get("CONDA_PKGS_DIRS", ""), ",") or merged("pkgs_dirs")]
    pkgs += ([root / "pkgs"] if root is not None else []) + [home / ".conda" / "pkgs"]
    alias = env.get("CONDA_CHANNEL_ALIAS") or scalar("channel_alias") or DEFAULT_ALIAS
    custom: dict[str, str] = {}
    for data in files:
        value = data.get("custom_channels")
        if isinstance(value, dict):
            custom.update({str(k): str(v).rstrip("/") for k, v in value.items() if isinstance(v, str)})
    return CondaConfig(
        root_prefix=root,
        envs_dirs=tuple(dict.fromkeys(envs)),
        pkgs_dirs=tuple(dict.fromkeys(pkgs)),
        channel_alias=alias.rstrip("/"),
        custom_channels=tuple(sorted(custom.items())),
        channels=tuple(str(c) for c in merge_sequence("channels", sources, env, aliases=("channel", "_channels"))),
        proxy_servers=tuple(merge_map("proxy_servers", sources, env).items()),
    )


def _split(text: str, sep: str) -> list[str]:
    parts = text.replace(",", sep).split(sep) if sep != "," else text.split(",")
    return [p.strip() for p in parts if p.strip()]


# ---------------------------------------------------------------- merged as conda merges

# conda 26.7 ``conda/common/configuration.py``: a ``#!final`` comment on a key makes the sources after
# it (higher priority) not count; ``#!top``/``#!bottom`` on a list item move it to the front/back of the
# merged list. ``CONDA_<KEY>`` is one more source, above every file; ``!important`` in it is its ``#!final``.
FINAL, TOP, BOTTOM = "final", "top", "bottom"
ENV_SOURCE = "envvars"


@dataclass(frozen=True, kw_only=True)
class _Value:
    """One loaded value with conda's flags: ``key_flag`` from the key's comment, ``flags`` per item."""

    value: Any  # a primitive, a tuple of _Value, or a dict of str -> _Value
    key_flag: str | None = None
    flags: Any = None  # tuple of per-item flags (sequence) or dict key -> flag (map)


def _flag(comment: object) -> str | None:
    """``ParameterFlag.from_string``: ``#!final`` -> final; anything else -> None."""
    text = comment.strip("!#") if isinstance(comment, str) else None
    return text if text in (FINAL, TOP, BOTTOM) else None


def _seq_comment(seq: Any, index: int) -> str | None:
    try:
        item = seq.ca.items[index]
        return (item[0].value.strip() or None) if item[0] else (item[1][0].value.strip() or None)
    except (AttributeError, IndexError, KeyError, TypeError):
        return None


def _map_comment(mapping: Any, key: object) -> str | None:
    try:
        return str(mapping.ca.items[key][2].value.strip()) or None
    except (AttributeError, KeyError, TypeError, IndexError):
        return None


def _yaml_value(raw: Any, key_comment: str | None) -> _Value:
    """``YamlRawParameter``: comments become flags, children keep their own."""
    if isinstance(raw, list):
        item_comments = [_seq_comment(raw, i) for i in range(len(raw))]
        items = tuple(_yaml_value(v, c) for v, c in zip(raw, item_comments, strict=True))
        return _Value(value=items, key_flag=_flag(key_comment), flags=tuple(_flag(c) for c in item_comments))
    if isinstance(raw, dict):
        comments = {k: _map_comment(raw, k) for k in raw}
        children = {str(k): _yaml_value(v, comments[k]) for k, v in raw.items()}
        flags = {str(k): _flag(c) for k, c in comments.items() if c is not None}
        return _Value(value=children, key_flag=_flag(key_comment), flags=flags)
    return _Value(value=_plain(raw), key_flag=_flag(key_comment))


def _matches(
    names: tuple[str, ...], sources: list[tuple[Path, Any]], env: Mapping[str, str], *, sequence: bool
) -> list[_Value]:
    """Each source's value for the key (one name of ``names`` per source, as conda allows), lowest first."""
    found: list[_Value] = []
    for _path, data in sources:
        keys = [n for n in names if n in data]
        if len(keys) == 1 or (keys and names[0] in keys):
            key = names[0] if names[0] in keys else keys[0]
            if data[key] is not None:
                found.append(_yaml_value(data[key], _map_comment(data, key)))
    variables = {k[len("CONDA_") :].lower(): v for k, v in env.items() if k.startswith("CONDA_")}
    keys = [n for n in names if n in variables]
    if len(keys) == 1 or (keys and names[0] in keys):
        raw = variables[names[0] if names[0] in keys else keys[0]]
        final = FINAL if len(raw.split("!important")) >= 2 else None
        if sequence:  # EnvRawParameter: comma-split, stripped, empties dropped, no item flags
            # each item is then read as a primitive, which drops its own ``!important``
            items = tuple(_Value(value=v.strip().split("!important")[0].strip()) for v in raw.split(",") if v.strip())
            found.append(_Value(value=items, key_flag=final, flags=tuple("" for _ in raw.split(","))))
    return found


def _first_important(matches: list[_Value]) -> list[_Value]:
    """Sources up to and including the first whose key is ``#!final``: higher ones do not count."""
    for index, match in enumerate(matches):
        if match.key_flag == FINAL:
            return matches[: index + 1]
    return matches


def _unique(values: list[Any]) -> list[Any]:
    return list(dict.fromkeys(values))


def _expandvars(value: Any, env: Mapping[str, str]) -> Any:
    """``os.path.expandvars`` against ``env``: ``$X``/``${X}`` replaced where set, left as they are where not."""
    if not isinstance(value, str) or "$" not in value:
        return value
    import re

    def sub(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        return env.get(name, match.group(0))

    return re.sub(r"\$(?:(\w+)|\{([^}]*)\})", sub, value)


def merge_sequence(
    name: str, sources: list[tuple[Path, Any]], env: Mapping[str, str], *, aliases: tuple[str, ...] = ()
) -> list[Any]:
    """``SequenceLoadedParameter.merge``: higher-priority sources first, de-duplicated; ``#!top`` items of
    every source before them and ``#!bottom`` items after (``#!bottom`` wins on an item marked both)."""
    relevant = [m for m in _first_important(_matches((name, *aliases), sources, env, sequence=True))
                if isinstance(m.value, tuple)]  # fmt: skip

    def marked(match: _Value, flag: str) -> list[Any]:
        return [v.value for v, f in zip(match.value, match.flags or (), strict=False) if f == flag]

    top = [v for m in relevant for v in marked(m, TOP)]
    bottom = [v for m in reversed(relevant) for v in marked(m, BOTTOM)]
    everything = [v.value for m in reversed(relevant) for v in m.value]
    top_deduped = _unique(top + everything)
    merged = list(reversed(_unique(list(reversed(bottom)) + list(reversed(top_deduped)))))
    return [_expandvars(v, env) for v in merged]


def merge_map(name: str, sources: list[tuple[Path, Any]], env: Mapping[str, str]) -> dict[str, Any]:
    """``MapLoadedParameter.merge`` of primitives: per key the higher source wins, unless a lower one marks
    the key (or the whole map) ``#!final``."""
    relevant = [m for m in _first_important(_matches((name,), sources, env, sequence=False))
                if isinstance(m.value, dict)]  # fmt: skip
    grouped: dict[str, list[_Value]] = {}
    for match in relevant:
        for key, value in match.value.items():
            grouped.setdefault(key, []).append(value)
    merged = {key: _merge_primitive(values) for key, values in grouped.items()}
    final = {
        key: value.value
        for match in reversed(relevant)
        for key, value in match.value.items()
        if isinstance(match.flags, dict) and match.flags.get(key) == FINAL
    }
    return {key: _expandvars(value, env) for key, value in {**merged, **final}.items()}


def _merge_primitive(values: list[_Value]) -> Any:
    important = next((v for v in values if v.key_flag == FINAL), None)
    return (important or values[-1]).value


# ---------------------------------------------------------------- environments


def find_named_env(name: str, config: CondaConfig) -> Path | None:
    """``-n NAME`` as conda resolves it: ``base`` is the root; else the first envs dir holding NAME."""
    if name == "base":
        root = config.root_prefix
        return root if root is not None and (root / "conda-meta").is_dir() else None
    for directory in config.envs_dirs:
        if (directory / name / "conda-meta").is_dir():
            return directory / name
    return None


def target_args(prefix: Path, config: CondaConfig) -> str:
    """``-n NAME`` when conda's ``-n`` finds exactly this prefix, else the shell-quoted ``-p PATH``."""
    for name in (prefix.name, "base"):
        found = find_named_env(name, config)
        if found is not None and _same(found, prefix):
            return f"-n {shlex.quote(name)}"
    return f"-p {shlex.quote(str(prefix))}"


def _same(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False


# ---------------------------------------------------------------- channels


def channel_url(name: str, config: CondaConfig) -> str:
    """A channel name as a URL: ``custom_channels`` first, else under ``channel_alias``; URLs pass through."""
    if "://" in name:
        return name.rstrip("/")
    head = name.split("/", 1)[0]
    for key, base in config.custom_channels:
        if key == head:
            return f"{base}/{name}"
    return f"{config.channel_alias}/{name}"


def strip_credentials(url: str) -> str:
    """A URL without ``user:pass@``, an anaconda.org ``/t/<token>`` segment or ``token=`` queries.

    Everything condafix writes to disk goes through this: conda keeps tokens in its own store.
    """
    try:
        parts = urlsplit(url)
    except ValueError:  # a broken IPv6 host (`http://u:p@[::1/x`): no parts to keep, so the text redactor's answer
        from condafix.redact import redact

        return redact(url)
    if not parts.scheme or not parts.netloc:
        return url
    host = parts.netloc.rsplit("@", 1)[-1]
    segments = parts.path.split("/")
    kept: list[str] = []
    skip = False
    for index, segment in enumerate(segments):
        if skip:
            skip = False
            continue
        if segment == "t" and index + 1 < len(segments) - 1 and index > 0:
            skip = True
            continue
        kept.append(segment)
    query = "&".join(
        q
        for q in parts.query.split("&")
        if q and q.split("=", 1)[0].lower() not in ("token", "access_token", "api_key", "password")
    )
    return urlunsplit((parts.scheme, host, "/".join(kept), query, parts.fragment))


def canonical_channel(url: str, config: CondaConfig) -> str:
    """conda's canonical channel name (what history lines carry): the alias or custom base stripped."""
    clean = strip_credentials(url).rstrip("/")
    for key, base in config.custom_channels:
        if clean.startswith(f"{strip_credentials(base)}/{key}"):
            return clean[len(strip_credentials(base)) + 1 :]
    for alias in (config.channel_alias, DEFAULT_ALIAS):
        base = strip_credentials(alias).rstrip("/")
        if clean.startswith(base + "/"):
            return clean[len(base) + 1 :]
    return clean
