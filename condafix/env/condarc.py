"""conda's own configuration, read the way conda reads it: envs dirs, package caches, channel names.

condafix runs beside conda, not inside it, so it reads conda's condarc search path and the
``CONDA_*`` variables itself (PyYAML, no conda import): ``-n NAME`` must find the env conda
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

DEFAULT_ALIAS = "https://conda.anaconda.org"


@dataclass(frozen=True)
class CondaConfig:
    """The parts of conda's configuration condafix needs."""

    root_prefix: Path | None
    envs_dirs: tuple[Path, ...]
    pkgs_dirs: tuple[Path, ...]
    channel_alias: str
    custom_channels: tuple[tuple[str, str], ...]
    channels: tuple[str, ...] = ()


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
    first; a ``condarc.d/`` directory contributes its ``*.yml``/``*.yaml`` files in name order, and an entry
    whose variable is unset is skipped, as conda skips it."""
    home = Path(env.get("HOME") or Path.home())
    dirs: list[Path | None] = [Path("/etc/conda"), Path("/var/lib/conda"), root]
    xdg = env.get("XDG_CONFIG_HOME")
    dirs += [Path(xdg) / "conda" if xdg else None, home / ".config" / "conda", home / ".conda"]
    places: list[Path] = []
    for base in [d for d in dirs if d is not None]:
        places += [base / ".condarc", base / "condarc", *_drop_in(base / "condarc.d")]
    places.append(home / ".condarc")
    if env.get("CONDA_PREFIX"):
        prefix = Path(env["CONDA_PREFIX"])
        places += [prefix / ".condarc", prefix / "condarc", *_drop_in(prefix / "condarc.d")]
    if env.get("CONDARC"):
        places.append(Path(env["CONDARC"]))
    return list(dict.fromkeys(places))


def _drop_in(directory: Path) -> list[Path]:
    try:
        return sorted(p for p in directory.iterdir() if p.suffix in (".yml", ".yaml") and p.is_file())
    except OSError:
        return []


def _files(env: Mapping[str, str], root: Path | None) -> list[tuple[Path, dict[str, Any]]]:
    """Every condarc conda reads, parsed; a file that is not YAML (or not UTF-8) is skipped, as it is unreadable."""
    existing = [path for path in search_path(env, root) if path.is_file()]
    if not existing:
        return []  # the common case: no YAML parser to import (start-up)
    import yaml

    found = []
    for path in existing:
        data = read_file(path, yaml)
        if data is not None:
            found.append((path, data))
    return found


def read_file(path: Path, yaml: Any = None) -> dict[str, Any] | None:
    """One condarc's mapping ({} when empty or unreadable); None when it is not YAML or not UTF-8."""
    if yaml is None:
        import yaml
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError:
        return {}
    except (yaml.YAMLError, UnicodeDecodeError, RecursionError):
        return None
    return data if isinstance(data, dict) else {}


def files(env: Mapping[str, str] | None = None) -> list[tuple[Path, dict[str, Any]]]:
    """(path, contents) of every condarc conda reads here, lowest priority first: the one reader."""
    env = os.environ if env is None else env
    return _files(env, root_prefix(env))


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
    files = [data for _path, data in _files(env, root)]
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
        root,
        tuple(dict.fromkeys(envs)),
        tuple(dict.fromkeys(pkgs)),
        alias.rstrip("/"),
        tuple(sorted(custom.items())),
        tuple(_split(env.get("CONDA_CHANNELS", ""), ",") or merged("channels")),
    )


def _split(text: str, sep: str) -> list[str]:
    parts = text.replace(",", sep).split(sep) if sep != "," else text.split(",")
    return [p.strip() for p in parts if p.strip()]


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
    parts = urlsplit(url)
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
