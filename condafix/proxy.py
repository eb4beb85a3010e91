"""Proxy diagnosis and the sanitized environment every child process and HTTP client gets.

``read_settings`` collects proxy variables (both cases), ``.condarc`` ``proxy_servers`` and the
CA-bundle settings; ``diagnose`` says what is wrong with each, one line apiece; ``sanitize`` is a
pure dict function that keeps valid settings and drops broken ones (or all, or sets one). Nothing
here touches the user's shell or files. Values stay raw (the sanitized environment needs them);
``render`` redacts them on the way out.
"""

from __future__ import annotations

import contextlib
import importlib.util
import ipaddress
import os
import socket
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from condafix.errors import Hint, UsageError
from condafix.findings import Finding, Severity

PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "ftp_proxy", "socks_proxy", "no_proxy")
CA_VARS = ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "CURL_CA_BUNDLE")
CONNECT_TIMEOUT = 2.0


@dataclass(frozen=True, kw_only=True)
class Setting:
    """One proxy-related value and where it came from (``$HTTPS_PROXY``, ``~/.condarc``...)."""

    name: str
    source: str
    value: str  # raw: render redacts it


def _finding(code: str, severity: Severity, setting: str | None, message: str, fix: str) -> Finding:
    """A proxy problem in the project's one finding type: the setting it is about, and what to do."""
    return Finding(
        code=code, severity=severity, message=message, hints=(Hint(code="fix", text=fix),), component=setting
    )


@dataclass(frozen=True, kw_only=True)
class ProxyReport:
    settings: tuple[Setting, ...]
    findings: tuple[Finding, ...]
    broken: tuple[str, ...]  # environment variable names the sanitized environment drops
    channel_hosts: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not any(f.severity == "error" for f in self.findings)


# ---------------------------------------------------------------- reading


def _condarc_values(env: Mapping[str, str]) -> tuple[list[tuple[str, str, str]], list[Finding]]:
    """``proxy_servers`` and ``ssl_verify`` from every condarc conda reads (``env.condarc``, the one reader)."""
    from condafix.env import condarc

    values: list[tuple[str, str, str]] = []
    problems: list[Finding] = []
    for path in condarc.search_path(env, condarc.root_prefix(env)):
        if not path.is_file():
            continue
        try:
            data = condarc.read_file(path)
        except condarc.CondarcError as exc:
            problems.append(condarc.finding(exc))
            continue
        servers = data.get("proxy_servers")
        if isinstance(servers, dict):
            for key, value in servers.items():
                values.append((f"proxy_servers.{key}", str(path), str(value)))
        if "ssl_verify" in data:
            values.append(("ssl_verify", str(path), str(data["ssl_verify"])))
    return values, problems


def read_settings(env: Mapping[str, str]) -> tuple[list[tuple[str, str, str]], list[Finding]]:
    """(name, source, raw value) of every setting."""
    found: list[tuple[str, str, str]] = []
    for var in PROXY_VARS:
        for name in (var, var.upper()):
            if name in env:
                found.append((name, f"${name}", env[name]))
    for name in CA_VARS:
        if name in env:
            found.append((name, f"${name}", env[name]))
    condarc, problems = _condarc_values(env)
    return found + condarc, problems


# ---------------------------------------------------------------- diagnosing (pure except the TCP probe)


def _check_url(name: str, raw: str) -> tuple[list[Finding], tuple[str, int] | None]:
    """Problems with one proxy URL, and (host, port) to probe when it parses."""
    value = raw.strip()
    shown = value if value.isprintable() else repr(value)  # one line, whatever was pasted
    if not value:
        return [_finding("proxy_empty", "warning", name, f"{name} is set but empty", f"unset {name}")], None
    if "://" not in value:
        fix = f"write it as http://{shown}" if value.split(":")[0] else f"unset {name}"
        return [
            _finding(
                "proxy_no_scheme", "error", name, f"{name}={shown} has no scheme; conda/requests cannot use it", fix
            )
        ], None
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError as exc:
        return [
            _finding(
                "proxy_invalid_url", "error", name, f"{name}={shown} is not a valid URL ({exc})", f"fix or unset {name}"
            )
        ], None
    findings: list[Finding] = []
    scheme = parts.scheme.lower()
    if not parts.hostname:
        return [_finding("proxy_no_host", "error", name, f"{name}={shown} has no host", f"fix or unset {name}")], None
    if scheme == "https":
        findings.append(
            _finding(
                "proxy_https_scheme",
                "warning",
                name,
                f"{name}={shown} uses https:// for the proxy itself; most proxies "
                "speak plain HTTP to the client (conda#9497)",
                f"use http://{parts.hostname}:{port or 3128} unless your proxy really speaks TLS",
            )
        )
    elif scheme.startswith("socks"):
        if importlib.util.find_spec("socks") is None:
            findings.append(
                _finding(
                    "proxy_socks_missing",
                    "error",
                    name,
                    f"{name}={shown} is a SOCKS proxy, but no SOCKS client library "
                    "(PySocks) is installed for conda/requests (conda#4224)",
                    f"install pysocks, or unset {name} if a desktop setting put it there",
                )
            )
    elif scheme != "http":
        findings.append(
            _finding(
                "proxy_unknown_scheme",
                "error",
                name,
                f"{name}={shown}: unknown proxy scheme {scheme!r}",
                "use http://host:port",
            )
        )
        return findings, None
    default = 1080 if scheme.startswith("socks") else (443 if scheme == "https" else 80)
    return findings, (parts.hostname, port or default)


def _probe(host: str, port: int) -> str | None:
    """None if a TCP connection opens within CONNECT_TIMEOUT, else why not."""
    try:
        with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT):
            return None
    except socket.gaierror:
        return f"host {host} does not resolve"
    except TimeoutError:
        return f"{host}:{port} does not answer (no connection within {CONNECT_TIMEOUT:g} s)"
    except OSError as exc:
        return f"{host}:{port} refuses connections ({exc.strerror or exc})"


def probe_all(
    targets: Sequence[tuple[str, int]], budget: float = CONNECT_TIMEOUT + 0.5
) -> dict[tuple[str, int], str | None]:
    """Probe every target concurrently; the whole round, name resolution included, ends within ``budget``.

    getaddrinfo ignores socket timeouts, so each probe runs in a daemon thread that a slow DNS cannot
    make condafix wait for (nor keep it alive at exit).
    """
    import threading

    answers: dict[tuple[str, int], str | None] = {}

    def work(target: tuple[str, int]) -> None:
        answers[target] = _probe(*target)

    threads = [threading.Thread(target=work, args=(t,), daemon=True) for t in targets]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + budget
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    return {
        t: answers[t]
        if t in answers
        else f"{t[0]}:{t[1]} gave no answer within {budget:g} s (name resolution or connection)"
        for t in targets
    }


def _is_internal(host: str) -> bool:
    if host in ("localhost",) or host.endswith((".local", ".internal", ".lan", ".corp", ".home")):
        return True
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return address.is_private or address.is_loopback or address.is_link_local


def no_proxy_covers(no_proxy: str, host: str) -> bool:
    """The usual no_proxy rules: ``*``, exact host, ``.suffix``/``suffix`` domain matches, CIDR blocks."""
    for entry in (e.strip().lower() for e in no_proxy.split(",") if e.strip()):
        if entry == "*":
            return True
        entry = entry.split(":")[0] if entry.count(":") == 1 else entry
        try:
            if ipaddress.ip_address(host.strip("[]")) in ipaddress.ip_network(entry, strict=False):
                return True
            continue
        except ValueError:
            pass
        bare = entry.lstrip(".")
        if host.lower() == bare or host.lower().endswith("." + bare):
            return True
    return False


def diagnose(env: Mapping[str, str], channels: Sequence[str] = (), *, connect: bool = True) -> ProxyReport:
    """Every setting, what is wrong with it and what to do; dead hosts/ports probed concurrently."""
    raw_settings, findings = read_settings(env)
    settings = tuple(Setting(name=n, source=s, value=v) for n, s, v in raw_settings)
    broken: set[str] = set()
    probes: dict[tuple[str, int], list[str]] = {}
    values = {n: v for n, _s, v in raw_settings}
    for name, source, raw in raw_settings:
        base = name.lower()
        if base in ("http_proxy", "https_proxy", "all_proxy", "ftp_proxy", "socks_proxy") or name.startswith(
            "proxy_servers."
        ):
            problems, target = _check_url(name, raw)
            findings += problems
            if any(p.severity == "error" for p in problems) and source.startswith("$"):
                broken.add(name)
            if target:
                probes.setdefault(target, []).append(name)
        elif name in CA_VARS or (name == "ssl_verify" and raw.lower() not in ("true", "false", "truststore")):
            if raw and not Path(raw).expanduser().exists():
                findings.append(
                    _finding(
                        "ca_bundle_missing",
                        "error",
                        name,
                        f"{name} points to {raw}, which does not exist",
                        f"fix the path or unset {name}",
                    )
                )
                if source.startswith("$"):
                    broken.add(name)
        elif name == "ssl_verify" and raw.lower() == "false":
            findings.append(
                _finding(
                    "ssl_verify_off",
                    "warning",
                    name,
                    f"ssl_verify is false in {source}: TLS is not verified",
                    "point ssl_verify at your CA bundle instead",
                )
            )
    for var in PROXY_VARS:
        lower, upper = values.get(var), values.get(var.upper())
        if lower is not None and upper is not None and lower != upper:
            findings.append(
                _finding(
                    "proxy_case_differs",
                    "warning",
                    var,
                    f"{var} and {var.upper()} differ ({lower} vs {upper}); tools disagree on which wins",
                    "set both to the same value",
                )
            )
    if connect and probes:
        answers = probe_all(list(probes))
        for target, why in answers.items():
            if why is None:
                continue
            for name in probes[target]:
                findings.append(
                    _finding(
                        "proxy_unreachable", "error", name, f"{name}: {why}", f"fix the proxy address or unset {name}"
                    )
                )
                if not name.startswith("proxy_servers."):
                    broken.add(name)
    hosts = tuple(h for h in (_channel_host(c) for c in channels) if h)
    no_proxy = values.get("no_proxy") or values.get("NO_PROXY") or ""
    proxied = any(
        values.get(v) for v in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY")
    )
    for host in hosts:
        if proxied and _is_internal(host) and not no_proxy_covers(no_proxy, host):
            findings.append(
                _finding(
                    "no_proxy_misses_channel",
                    "warning",
                    "no_proxy",
                    f"channel host {host} is internal but no_proxy does not "
                    "cover it, so requests to it go through the proxy",
                    f"add {host} to no_proxy and NO_PROXY",
                )
            )
    return ProxyReport(settings=settings, findings=tuple(findings), broken=tuple(sorted(broken)), channel_hosts=hosts)


def _channel_host(channel: str) -> str | None:
    if "://" not in channel or channel.startswith("file://"):
        return None
    try:
        return urlsplit(channel).hostname
    except ValueError:
        return None


# ---------------------------------------------------------------- the sanitized environment

Mode = Literal["keep-valid", "none", "explicit", "as-is"]


def validate_proxy_url(url: str) -> str:
    """``--proxy URL``: must parse as http(s)/socks with a host; one clear line otherwise."""
    problems, target = _check_url("--proxy", url)
    errors = [p for p in problems if p.severity == "error"]
    if errors or target is None:
        raise UsageError(errors[0].message if errors else f"--proxy {url!r}: not a proxy URL")
    return url


def sanitize(
    env: Mapping[str, str], *, mode: Mode, broken: Sequence[str] = (), proxy: str | None = None
) -> dict[str, str]:
    """The environment for children and HTTP clients: drop broken settings, all of them, or set one."""
    out = dict(env)
    if mode == "as-is":
        return out
    if mode == "keep-valid":
        for name in broken:
            out.pop(name, None)
        return out
    for var in PROXY_VARS:
        if var == "no_proxy":
            continue
        out.pop(var, None)
        out.pop(var.upper(), None)
    if mode == "explicit" and proxy:
        for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
            out[var] = proxy
    return out


@dataclass
class Policy:
    """What the CLI asked for (``--no-proxy``/``--proxy``/``--keep-proxy``).

    The diagnosis behind "drop the broken ones" runs once per process, on first use, so commands
    that never touch the network never pay for it.
    """

    mode: Mode = "keep-valid"
    proxy: str | None = None
    dropped: tuple[str, ...] = ()
    _diagnosed: bool = False

    def environ(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        base = os.environ if base is None else base
        if self.mode == "keep-valid" and not self._diagnosed:
            if any(k.lower() in PROXY_VARS or k in CA_VARS for k in base):
                self.dropped = diagnose(base, connect=True).broken
            self._diagnosed = True
        return sanitize(base, mode=self.mode, broken=self.dropped, proxy=self.proxy)


POLICY = Policy()


def set_policy(*, no_proxy: bool = False, proxy: str | None = None, keep: bool = False) -> None:
    global POLICY
    if sum((no_proxy, bool(proxy), keep)) > 1:
        raise UsageError("pass only one of --no-proxy, --proxy URL and --keep-proxy")
    mode: Mode = "none" if no_proxy else "explicit" if proxy else "as-is" if keep else "keep-valid"
    POLICY = Policy(mode=mode, proxy=validate_proxy_url(proxy) if proxy else None)


_MANAGED = (*PROXY_VARS, *(v.upper() for v in PROXY_VARS), *CA_VARS)


@contextlib.contextmanager
def applied() -> Iterator[tuple[str, ...]]:
    """Temporarily give os.environ the sanitized proxy settings (rattler reads them when a client is
    created); every other variable is left alone, and everything is restored afterwards."""
    wanted = POLICY.environ()
    saved = {key: os.environ.get(key) for key in _MANAGED}
    for key in _MANAGED:
        if key in wanted:
            os.environ[key] = wanted[key]
        else:
            os.environ.pop(key, None)
    try:
        yield POLICY.dropped
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
