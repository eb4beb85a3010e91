"""Proxy diagnosis, the sanitized environment, and redaction, with a real tinyproxy on 127.0.0.1."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from condafix import proxy
from condafix.cli import render
from condafix.redact import redact

PROXY_KEYS = [*proxy.PROXY_VARS, *(v.upper() for v in proxy.PROXY_VARS), *proxy.CA_VARS, "CONDARC"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, str]:
    """os.environ without any proxy setting, and HOME pointing at an empty dir (no ~/.condarc)."""
    for key in PROXY_KEYS:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    monkeypatch.setattr(proxy, "POLICY", proxy.Policy())
    return {k: v for k, v in os.environ.items()}


@pytest.fixture
def tinyproxy(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A real HTTP proxy (Debian tinyproxy, installed by .ci/run) on 127.0.0.1."""
    exe = shutil.which("tinyproxy")
    if exe is None:
        pytest.skip("tinyproxy is not installed (apt-get install tinyproxy; .ci/run does)")
    port, log = free_port(), tmp_path / "tinyproxy.log"
    conf = tmp_path / "tinyproxy.conf"
    conf.write_text(
        f'Port {port}\nListen 127.0.0.1\nTimeout 30\nLogFile "{log}"\nLogLevel Info\nMaxClients 20\nAllow 127.0.0.1\n'
    )
    child = subprocess.Popen([exe, "-d", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", log
    stop(child)


def stop(child: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL: on one CI run tinyproxy 1.11.1 had not exited 10 s after SIGTERM."""
    child.terminate()
    try:
        child.wait(timeout=5)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait(timeout=10)


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "condafix", *args],
        capture_output=True,
        text=True,
        env={**env, "NO_COLOR": "1"},
        timeout=120,
        check=False,
    )


BROKEN = ["numba-cuda", "python 3.12.3.*", "numpy 2.0.0.*"]


def test_plan_fetches_repodata_through_the_real_proxy(
    installed_env: Callable[..., Path],
    http_channel: str,
    tinyproxy: tuple[str, Path],
    clean_env: dict[str, str],
    tmp_path: Path,
) -> None:
    url, log = tinyproxy
    prefix = installed_env(BROKEN, cuda="12.9")
    env = {**clean_env, "http_proxy": url, "CONDAFIX_CACHE_DIR": str(tmp_path / "cache")}
    done = cli("cuda", "-p", str(prefix), "-c", http_channel, "--cuda", "12.4", "--json", env=env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["result"]["pin"] == "cuda-version=12.4"
    assert "repodata" in log.read_text()  # the requests really went through tinyproxy
    assert "ignored broken proxy" not in done.stderr


def test_dead_proxy_fails_fast_naming_it_and_sanitizing_fixes_it(
    installed_env: Callable[..., Path], http_channel: str, clean_env: dict[str, str], tmp_path: Path
) -> None:
    prefix = installed_env(BROKEN, cuda="12.9")
    dead = f"http://user:Pr0xyS3cret@127.0.0.1:{free_port()}"  # a closed port
    env = {**clean_env, "http_proxy": dead, "CONDAFIX_CACHE_DIR": str(tmp_path / "cache")}
    started = time.monotonic()
    failed = cli("--keep-proxy", "cuda", "-p", str(prefix), "-c", http_channel, "--cuda", "12.4", env=env)
    elapsed = time.monotonic() - started
    assert failed.returncode == 2 and elapsed < 30
    assert "through proxy $http_proxy=http://***@127.0.0.1" in failed.stderr and "condafix proxy" in failed.stderr
    assert "Pr0xyS3cret" not in failed.stdout + failed.stderr
    fixed = cli("cuda", "-p", str(prefix), "-c", http_channel, "--cuda", "12.4", env=env)
    assert fixed.returncode == 0, fixed.stderr
    assert "ignored broken proxy settings http_proxy" in fixed.stderr and "Pr0xyS3cret" not in fixed.stderr
    assert cli("--no-proxy", "cuda", "-p", str(prefix), "-c", http_channel, "--cuda", "12.4", env=env).returncode == 0


def test_explicit_proxy_option(
    installed_env: Callable[..., Path],
    http_channel: str,
    tinyproxy: tuple[str, Path],
    clean_env: dict[str, str],
    tmp_path: Path,
) -> None:
    url, log = tinyproxy
    prefix = installed_env(BROKEN, cuda="12.9")
    env = {**clean_env, "http_proxy": f"http://127.0.0.1:{free_port()}", "CONDAFIX_CACHE_DIR": str(tmp_path / "c")}
    done = cli("--proxy", url, "cuda", "-p", str(prefix), "-c", http_channel, "--cuda", "12.4", env=env)
    assert done.returncode == 0, done.stderr and "repodata" in log.read_text()
    bad = cli("--proxy", "proxy.example:3128", "cuda", "-p", str(prefix), "--cuda", "12.4", env=env)
    assert bad.returncode == 2 and "has no scheme" in bad.stderr


def findings_for(env: dict[str, str], channels: tuple[str, ...] = ()) -> dict[str, list[proxy.Finding]]:
    report = proxy.diagnose(env, channels, connect=True)
    by_setting: dict[str, list[proxy.Finding]] = {}
    for finding in report.findings:
        by_setting.setdefault(finding.component or "", []).append(finding)
    return by_setting


def test_each_problem_gets_one_line_and_a_fix(clean_env: dict[str, str], tinyproxy: tuple[str, Path]) -> None:
    url, _ = tinyproxy
    env = {
        **clean_env,
        "http_proxy": url,
        "HTTP_PROXY": url.replace("127.0.0.1", "localhost"),
        "https_proxy": url.replace("http://", "https://"),
        "ftp_proxy": "proxy.corp:3128",
        "all_proxy": "http://127.0.0.1:notaport",
        "socks_proxy": "socks5://127.0.0.1:1080",
        "REQUESTS_CA_BUNDLE": "/nonexistent/ca.pem",
        "no_proxy": "localhost",
    }
    found = findings_for(env, ("http://10.1.2.3/conda-forge",))
    assert not any(f.severity == "error" for f in found.get("http_proxy", []))  # the good one stays
    assert "plain HTTP" in found["https_proxy"][0].message
    assert "has no scheme" in found["ftp_proxy"][0].message and found["ftp_proxy"][0].severity == "error"
    assert "not a valid URL" in found["all_proxy"][0].message
    assert "differ" in found["http_proxy"][0].message if "http_proxy" in found else True
    assert "does not exist" in found["REQUESTS_CA_BUNDLE"][0].message
    assert "no_proxy does not cover" in found["no_proxy"][0].message
    if __import__("importlib").util.find_spec("socks") is None:
        assert "SOCKS" in found["socks_proxy"][0].message
    report = proxy.diagnose(env, connect=True)
    assert {"ftp_proxy", "all_proxy", "REQUESTS_CA_BUNDLE"} <= set(report.broken) and "http_proxy" not in report.broken


def test_dead_and_unresolvable_hosts_are_probed_concurrently_and_bounded(clean_env: dict[str, str]) -> None:
    env = {
        **clean_env,
        "http_proxy": f"http://127.0.0.1:{free_port()}",
        "https_proxy": "http://no-such-host.invalid:3128",
    }
    started = time.monotonic()
    found = findings_for(env)
    assert time.monotonic() - started < 2 * proxy.CONNECT_TIMEOUT + 1
    assert "refuses connections" in found["http_proxy"][0].message
    assert re.search("does not resolve|no answer within", found["https_proxy"][0].message)  # DNS may be slow on CI


def test_condarc_proxy_servers_and_ssl_verify(clean_env: dict[str, str], tmp_path: Path) -> None:
    rc = tmp_path / "condarc"
    rc.write_text(
        "proxy_servers:\n  http: http://u:CondarcPw@127.0.0.1:1\n  https: https://127.0.0.1:1\n"
        f"ssl_verify: {tmp_path}/missing.pem\n"
    )
    report = proxy.diagnose({**clean_env, "CONDARC": str(rc)}, connect=False)
    names = {s.name: s for s in report.settings}
    assert names["proxy_servers.http"].source == str(rc)
    assert names["proxy_servers.http"].value == "http://u:CondarcPw@127.0.0.1:1"  # models keep raw values
    shown = io.StringIO()
    render.proxy_text(report, out=render.Output(shown, shown))
    render.print_json("proxy", report, 0, out=render.Output(shown, shown))
    assert "CondarcPw" not in shown.getvalue() and "http://***@127.0.0.1:1" in shown.getvalue()
    assert any("plain HTTP" in f.message for f in report.findings)
    assert any(f.component == "ssl_verify" and "does not exist" in f.message for f in report.findings)


def test_sanitize_is_a_pure_function() -> None:
    env = {"http_proxy": "http://a:1", "HTTPS_PROXY": "http://b:2", "no_proxy": "x", "PATH": "/bin"}
    assert proxy.sanitize(env, mode="keep-valid", broken=["http_proxy"]) == {
        k: v for k, v in env.items() if k != "http_proxy"
    }
    assert proxy.sanitize(env, mode="none") == {"no_proxy": "x", "PATH": "/bin"}
    explicit = proxy.sanitize(env, mode="explicit", proxy="http://c:3")
    assert explicit["HTTPS_PROXY"] == explicit["http_proxy"] == "http://c:3" and explicit["PATH"] == "/bin"
    assert proxy.sanitize(env, mode="as-is") == env
    assert env["http_proxy"] == "http://a:1"  # input untouched


@pytest.mark.parametrize(
    ("no_proxy", "host", "covered"),
    [
        ("localhost,127.0.0.1", "127.0.0.1", True),
        (".corp.example", "mirror.corp.example", True),
        ("corp.example", "mirror.corp.example", True),
        ("10.0.0.0/8", "10.1.2.3", True),
        ("*", "anything", True),
        ("example.com", "notexample.com", False),
        ("", "10.0.0.1", False),
    ],
)
def test_no_proxy_matching(no_proxy: str, host: str, covered: bool) -> None:
    assert proxy.no_proxy_covers(no_proxy, host) is covered


SECRET = "Zq9xS3cr3t"
URL_FORMS = [
    f"http://user:{SECRET}@proxy.corp:3128",
    f"http://user:{SECRET}@proxy.corp:3128/",
    f"https://user:{SECRET}@proxy.corp:443",
    f"http://{SECRET}@proxy.corp:3128",
    f"http://us%40er:{SECRET}@proxy.corp:3128",
    f"http://user:{SECRET}%40x@proxy.corp:3128",
    f"http://user:p@{SECRET}@proxy.corp:3128",
    f"http://user:p#{SECRET}@proxy.corp:3128",
    f"http://user:p/{SECRET}@proxy.corp:3128",
    f"http://user:{SECRET}@[::1]:3128",
    f"http://user:{SECRET}@[2001:db8::1]:8080",
    f"http://user:{SECRET}@10.0.0.1:3128",
    f"http://user:{SECRET}@127.0.0.1",
    f"socks5://user:{SECRET}@127.0.0.1:1080",
    f"socks5h://user:{SECRET}@proxy.corp:1080",
    f"user:{SECRET}@proxy.corp:3128",
    f"user:{SECRET}@127.0.0.1:3128",
    f"HTTP://USER:{SECRET}@PROXY.CORP:3128",
    f"http://user:{SECRET}@proxy.corp:notaport",
    f"http://user:{SECRET}@proxy.corp",
    f"http://user:{SECRET}@proxy-1.corp.example.com:3128/path",
    f"http://user:{SECRET}:extra@proxy.corp:3128",
    f"http://domain%5Cuser:{SECRET}@proxy.corp:3128",
    f"http://user:{SECRET}@proxy.corp:3128?x=1",
    f"https://conda.anaconda.org/t/{SECRET}/conda-forge",
    f"https://conda.anaconda.org/t/{SECRET}",
    f"https://repo.example/ch?token={SECRET}",
    f"https://repo.example/ch?a=1&access_token={SECRET}",
    f"https://user:{SECRET}@repo.example/t/{SECRET}/ch",
    f" http://user:{SECRET}@proxy.corp:3128 ",
    f"http://user:{SECRET}@localhost:3128",
    f"ftp://user:{SECRET}@ftp.example:21",
]


@pytest.mark.parametrize("form", URL_FORMS)
def test_redact_removes_the_secret(form: str) -> None:
    assert SECRET not in redact(form)
    assert SECRET not in redact(f"error: could not connect through {form} (os error 111)")


def test_credentials_never_reach_output(clean_env: dict[str, str], tmp_path: Path) -> None:
    assert len(URL_FORMS) >= 30
    for index, form in enumerate(URL_FORMS):
        env = {**clean_env, "http_proxy": form.strip(), "HTTPS_PROXY": form.strip()}
        for args in (
            ("proxy", "--no-connect"),
            ("proxy", "--no-connect", "--json"),
            ("cuda", "-p", str(tmp_path), "--cuda", "12.4", "-c", form.strip(), "--json"),
        ):
            done = cli(*args, env=env)
            assert SECRET not in done.stdout + done.stderr, (index, args, done.stdout, done.stderr)


def test_probe_round_is_bounded_even_when_resolution_hangs(monkeypatch: pytest.MonkeyPatch) -> None:
    def slow(host: str, port: int) -> str | None:  # a resolver that never answers in time
        time.sleep(5)
        return None

    monkeypatch.setattr(proxy, "_probe", slow)
    started = time.monotonic()
    answers = proxy.probe_all([("proxy.corp", 3128), ("10.0.0.1", 8080)], budget=0.3)
    assert time.monotonic() - started < 1.5
    assert all("no answer within 0.3 s" in (why or "") for why in answers.values())


def test_a_proxy_set_only_in_xdg_condarc_is_found(clean_env: dict[str, str], tmp_path: Path) -> None:
    """conda reads ``$XDG_CONFIG_HOME/conda/condarc``; ``condafix proxy`` missed it on b1aaa3b."""
    xdg = tmp_path / "xdg"
    (xdg / "conda").mkdir(parents=True)
    (xdg / "conda" / "condarc").write_text("proxy_servers:\n  https: http://proxy.example.internal:3128\n")
    env = {**clean_env, "XDG_CONFIG_HOME": str(xdg)}
    done = subprocess.run(
        [sys.executable, "-m", "condafix", "proxy", "--json", "--no-connect"],
        capture_output=True, text=True, env=env, check=False,
    )  # fmt: skip
    doc = json.loads(done.stdout)
    settings = json.dumps(doc["result"])
    assert "proxy.example.internal:3128" in settings, settings
    assert str(xdg / "conda" / "condarc") in settings


def test_a_condarc_that_is_not_utf8_is_one_finding_not_a_traceback(clean_env: dict[str, str], tmp_path: Path) -> None:
    home = Path(clean_env["HOME"])
    (home / ".condarc").write_bytes(b"proxy_servers:\n  https: http://h\xff\xfe:3128\n")
    done = subprocess.run(
        [sys.executable, "-m", "condafix", "proxy", "--json", "--no-connect"],
        capture_output=True, text=True, env=clean_env, check=False,
    )  # fmt: skip
    assert "Traceback" not in done.stderr and "internal error" not in done.stderr, done.stderr
    assert "condarc_invalid" in done.stdout
