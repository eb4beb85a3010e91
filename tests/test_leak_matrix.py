"""The leak matrix: credential forms x every command x text and --json x stdout/stderr x every file condafix writes.

Each credentialed channel/proxy form reaches each command the way a user's input would (env records, -c,
environment.yml channels, lockfile URLs, proxy variables, pasted error text), against a real HTTP channel on
127.0.0.1 that accepts any userinfo, ``/t/<token>/`` prefix and query. CI runs a sample of the forms;
``CONDAFIX_LEAK_FULL=1 pytest tests/test_leak_matrix.py`` runs all of them (the README's reliability section).
"""

from __future__ import annotations

import functools
import http.server
import json
import logging
import os
import re
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from condafix.cli import app as cli

from .conftest import CUDA12_ENV, write_record
from .test_network import sharded_channel  # noqa: F401  (fixture)

S = "Zq9xS3cr3t"
FULL = bool(os.environ.get("CONDAFIX_LEAK_FULL"))

# {h}: the reachable channel server (127.0.0.1:port); forms with their own host exercise the error paths.
FORMS = [
    "http://user:{S}@{h}/chan",
    "http://{S}@{h}/chan",
    "http://{S}:x-oauth-basic@{h}/chan",
    "http://user:{S}@{h}",
    "http://us%40er:{S}@{h}/chan",
    "http://user:{S}%40x@{h}/chan",
    "http://user:p@{S}@{h}/chan",
    "http://user:p%23{S}@{h}/chan",
    "http://user:{S}%2Fx@{h}/chan",
    "http://user:{S}!$&'()*+,;=@{h}/chan",
    "HTTP://USER:{S}@{h}/chan",
    "http://domain%5Cuser:{S}@{h}/chan",
    "http://user:{S}:extra@{h}/chan",
    "http://user:{S}@{h}/t/{S}/chan",
    "http://{h}/t/{S}/chan",
    "http://{h}/t/{S}",
    "http://{h}/t/{S}/chan/",
    "http://{h}/chan?token={S}",
    "http://{h}/chan?access_token={S}",
    "http://{h}/chan?a=1&token={S}",
    "http://user:{S}@{h}/chan?token={S}",
    "http://user:{S}@{h}/chan#frag",
    "http://user:{S}@{h}/chan/",
    "http://user:{S}@{h}/chan/label/dev",
    "https://user:{S}@{h}/chan",
    "http://user:{S}@[::1]:1/chan",
    "http://user:{S}@[::1/chan",
    "http://user:{S}@127.0.0.1:1/chan",
    "http://user:{S}@localhost:{port}/chan",
    "http://user:{S}@{h}/t/{S}/chan/label/cuda",
    "http://{h}/t/{S}/chan?token={S}",
    "http://user:{S}@{h}/ch%2Fan",
    "http://user%3A{S}@{h}/chan",
    "http://u:{S}@{h}/a,b",
    "http://u:{S}@{h}/chan)",
    "http://u:{S}@{h}/chan;x",
    "http://u:{S}@{h}/chan|x",
    "http://u:{S}@{h}/chan]",
    "file://user:{S}@localhost/nonexistent",
    "socks5h://u:{S}@127.0.0.1:1/chan",
    "http://u:{S}@{h}/%74/{S}/chan",
    "http%3A%2F%2Fu%3A{S}%40{h}%2Fchan",
    "http://u:{S}@proxy.corp.invalid:3128",
    "u:{S}@127.0.0.1:1",
]
SAMPLE = FORMS if FULL else FORMS[::8]


class _Channel(http.server.SimpleHTTPRequestHandler):
    """Serves the fixture channel under any path: only the last two segments (subdir/file) count."""

    def translate_path(self, path: str) -> str:
        parts = [p for p in path.split("?")[0].split("#")[0].split("/") if p]
        return super().translate_path("/" + "/".join(parts[-2:]))

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def channel_server(channel: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, int]]:
    for var in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "no_proxy"):
        monkeypatch.delenv(var, raising=False)
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Channel, directory=str(channel)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    port = int(httpd.server_address[1])
    yield f"127.0.0.1:{port}", port
    httpd.shutdown()
    httpd.server_close()


class Matrix:
    """Runs condafix in-process (as ``main`` would) and records every output that holds the secret."""

    def __init__(self, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
        self.capfd, self.monkeypatch = capfd, monkeypatch
        self.checks = 0
        self.leaks: list[str] = []
        self.commands: set[str] = set()

    def run(self, form: str, *args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
        with self.monkeypatch.context() as m:
            m.setattr(sys, "argv", ["condafix", *args])
            m.setenv("NO_COLOR", "1")
            for key, value in (env or {}).items():
                m.setenv(key, value)
            code = cli._run_app()
        out, err = self.capfd.readouterr()
        label = f"{form!r} :: condafix {' '.join(a if S not in a else '<form>' for a in args)}"
        self.commands.add(args[0])
        for stream, text in (("stdout", out), ("stderr", err)):
            self.checks += 1
            if S in text:
                line = next(x for x in text.splitlines() if S in x)
                self.leaks.append(f"{label} [{stream}]: {line.strip()[:200]}")
        assert code != 70 and "internal error" not in err, (label, err)
        return code, out, err

    def both(self, form: str, *args: str, env: dict[str, str] | None = None) -> None:
        self.run(form, *args, env=env)
        self.run(form, *args, "--json", env=env)

    def file(self, form: str, path: Path, what: str) -> None:
        self.checks += 1
        if path.is_file() and S.encode() in path.read_bytes():
            self.leaks.append(f"{form!r} :: {what}: {path.name} holds the secret")

    def files(self, form: str, root: Path, what: str, *, allowed: dict[Path, int] | None = None) -> None:
        """Every file under root: no secret (``allowed``: files that may hold as many as the user's own input)."""
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            self.checks += 1
            count = path.read_bytes().count(S.encode())
            if count > (allowed or {}).get(path, 0):
                self.leaks.append(f"{form!r} :: {what}: {path.relative_to(root)} holds the secret {count}x")


TOTALS = {"forms": 0, "checks": 0, "leaks": 0}


@pytest.fixture(scope="module", autouse=True)
def _report() -> Iterator[None]:
    """``CONDAFIX_LEAK_REPORT=path``: forms, checks and leaks of this run, for the README."""
    yield
    if os.environ.get("CONDAFIX_LEAK_REPORT") and TOTALS["forms"]:
        Path(os.environ["CONDAFIX_LEAK_REPORT"]).write_text(json.dumps(TOTALS) + "\n")


@pytest.fixture
def matrix(capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Iterator[Matrix]:
    found = Matrix(capfd, monkeypatch)
    yield found
    TOTALS["forms"] += 1
    TOTALS["checks"] += found.checks
    TOTALS["leaks"] += len(found.leaks)
    root = logging.getLogger()
    for handler in list(root.handlers):
        if type(handler).__name__ == "_RedactingHandler":
            root.removeHandler(handler)
    logging.captureWarnings(False)


def record_env(root: Path, channel: str) -> Path:
    """An env of CUDA 12.9 records that came from ``channel`` (what doctor and rollback --list read)."""
    meta = root / "conda-meta"
    meta.mkdir(parents=True)
    for name, version, build, subdir in CUDA12_ENV:
        path = write_record(meta, name, version, build, subdir)
        record = json.loads(path.read_text())
        record["channel"] = f"{channel}/{subdir}"
        record["url"] = f"{channel}/{subdir}/{record['fn']}"
        path.write_text(json.dumps(record))
    (meta / "history").write_text("")
    return root


def error_text(form: str) -> str:
    return (
        f"CondaHTTPError: HTTP 000 CONNECTION FAILED for url <{form}/noarch/repodata.json>\n"
        f"ProxyError: Cannot connect to proxy {form}\n"
        "ptxas application ptx input, line 9; fatal   : Unsupported .version 7.7; current version is '7.4'\n"
    )


@pytest.mark.parametrize("template", SAMPLE)
def test_no_credential_leaves_condafix(
    template: str,
    matrix: Matrix,
    channel_server: tuple[str, int],
    installed_env: Callable[..., Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    host, port = channel_server
    form = template.format(S=S, h=host, port=port)
    assert S in form
    monkeypatch.setenv("CONDAFIX_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("CONDAFIX_HTTP_TIMEOUT", "5")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()

    # doctor and rollback --list on an env installed from the credentialed channel
    recorded = record_env(tmp_path / "recorded", form)
    matrix.both(form, "doctor", "-p", str(recorded), "--cuda", "12.4")
    matrix.both(form, "rollback", "-p", str(recorded), "--list")
    # explain: a pasted error that quotes the URL
    matrix.both(form, "explain", "--no-detect", error_text(form))
    # cuda: plan against the channel, then apply and roll back (files checked below)
    prefix = installed_env(["numba-cuda"], cuda="12.9", name="live")
    matrix.both(form, "cuda", "-p", str(prefix), "--cuda", "12.4", "-c", form)
    code, _out, _err = matrix.run(form, "cuda", "-p", str(prefix), "--cuda", "12.4", "-c", form, "--apply", "-y")
    if code == 0:
        matrix.both(form, "rollback", "-p", str(prefix), "--list")
        matrix.run(form, "rollback", "-p", str(prefix), "-y", "--json")
    matrix.files(form, prefix / "conda-meta" / "condafix", "snapshots, journal, lock")
    matrix.file(form, prefix / "conda-meta" / "history", "history")
    # env: the file names the channel; the check runs on it; --write keeps a .bak
    envdir = tmp_path / "envfile"
    envdir.mkdir()
    yml = envdir / "environment.yml"
    yml.write_text(f"name: x\nchannels:\n  - {form}\ndependencies:\n  - cuda-version=12.9\n  - numba-cuda\n")
    own = yml.read_bytes().count(S.encode())
    matrix.both(form, "env", str(yml), "--cuda", "12.4")
    matrix.run(form, "env", str(yml), "--cuda", "12.4", "--write")
    # the user's own file and its backup hold their channel as before; condafix adds no copy of it
    matrix.files(form, envdir, "env --write", allowed={yml: own, envdir / "environment.yml.bak": own})
    # lock: an @EXPLICIT file whose URLs carry the credential
    lockfile = tmp_path / "explicit.txt"
    lockfile.write_text(
        f"# platform: linux-64\n@EXPLICIT\n{form}/noarch/cuda-version-12.9-h4f385c5_3.conda#0123456789abcdef\n"
    )
    matrix.both(form, "lock", str(lockfile), "--cuda", "12.4")
    # proxy: the form as every proxy variable, and as a channel whose no_proxy coverage is checked
    proxied = {"http_proxy": form, "HTTPS_PROXY": form, "ALL_PROXY": form, "no_proxy": "localhost"}
    matrix.both(form, "proxy", "--no-connect", env=proxied)
    matrix.both(form, "proxy", "--no-connect", "-c", form)
    matrix.run(form, "--proxy", form, "proxy", "--no-connect")
    # a typer usage error quoting the form
    matrix.run(form, "explain", "text", form)

    assert matrix.commands >= {"doctor", "explain", "cuda", "rollback", "env", "lock", "proxy"}
    assert matrix.checks >= 40
    assert matrix.leaks == [], "\n".join(matrix.leaks)


def test_every_command_is_in_the_matrix() -> None:
    """A new command must join the matrix: compare with the typer app's commands."""
    import typer.main

    group = typer.main.get_command(cli.app)
    names = set(getattr(group, "commands", {}))
    source = Path(__file__).read_text()
    missing = [n for n in names if not re.search(rf'matrix\.(both|run)\(form, "{n}"', source)]
    assert missing == [], f"commands not in the leak matrix: {missing}"
    assert len(FORMS) >= 40


def test_full_mode_is_documented() -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    assert "CONDAFIX_LEAK_FULL=1" in readme and "CONDAFIX_FUZZ_EXAMPLES" in readme


CONDA_FORMS = ["http://user:{S}@{h}/chan", "http://{h}/t/{S}/chan", "http://u:p@{S}@{h}/t/{S}/chan"]


@pytest.mark.parametrize("template", CONDA_FORMS)
def test_no_credential_leaves_the_conda_plugin(
    template: str, channel_server: tuple[str, int], tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """`conda cuda` and `conda doctor cuda` print through conda's streams: redacted the same way."""
    from .realconda import BROKEN_SPECS

    conda = request.getfixturevalue("real_conda")
    host, port = channel_server
    form = template.format(S=S, h=host, port=port)
    prefix = conda.create(tmp_path / "env", BROKEN_SPECS, solver="libmamba", cuda="12.4")
    condarc = tmp_path / "condarc"
    condarc.write_text(f"channels:\n  - {form}\n")
    env = {"CONDARC": str(condarc)}
    leaks: list[str] = []
    runs = [
        ("cuda", "-p", str(prefix)),
        ("cuda", "-p", str(prefix), "--json"),
        ("cuda", "-p", str(prefix), "-c", form),
        ("doctor", "cuda", "-p", str(prefix)),
        ("cuda", "-p", str(prefix), "--apply", "--yes", "--json"),
    ]
    for args in runs:
        done = conda.run(*args, check=False, env=env)
        assert "Traceback" not in done.stderr, done.stderr[-2000:]
        if args[0] == "cuda" and "-c" not in args:  # the condarc channel is reachable: these plan (and apply)
            assert done.returncode == 0, done.stderr[-2000:]
        for stream, text in (("stdout", done.stdout), ("stderr", done.stderr)):
            if S in text:
                leaks.append(f"conda {' '.join(args[:2])} [{stream}]: {next(x for x in text.splitlines() if S in x)}")
    # standalone condafix planning with conda's solver: conda's reporters print into condafix's stderr
    for extra in ((), ("--json",)):
        done = subprocess.run(
            [conda.python, "-m", "condafix", "cuda", "-p", str(prefix), "--solver", "conda", "-c", form, *extra],
            capture_output=True,
            text=True,
            env={**conda.env(), **env},
            timeout=300,
            check=False,
        )
        assert "Traceback" not in done.stderr and "internal error" not in done.stderr, done.stderr[-2000:]
        for stream, text in (("stdout", done.stdout), ("stderr", done.stderr)):
            if S in text:
                leaks.append(f"condafix --solver conda [{stream}]: {next(x for x in text.splitlines() if S in x)}")
    for path in (p for p in (prefix / "conda-meta" / "condafix").rglob("*") if p.is_file()):
        if S.encode() in path.read_bytes():
            leaks.append(f"{path.relative_to(prefix)} holds the secret")
    assert leaks == [], "\n".join(leaks)


def test_conda_solver_http_error_is_one_line(
    sharded_channel: Path,  # noqa: F811
    installed_env: Callable[..., Path],
    request: pytest.FixtureRequest,
) -> None:
    """conda's fetch raising requests' HTTPError (a 404 on a shard the index names) was an internal error (exit 70)."""
    conda = request.getfixturevalue("real_conda")
    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0),
        functools.partial(_Channel, directory=str(sharded_channel)),  # shards/<hash>: 404
    )
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    form = f"http://user:{S}@127.0.0.1:{httpd.server_address[1]}/chan"
    prefix = installed_env(["numba-cuda"], cuda="12.9", name="conda-http")
    try:
        done = subprocess.run(
            [conda.python, "-m", "condafix", "cuda", "-p", str(prefix), "--solver", "conda", "-c", form],
            capture_output=True,
            text=True,
            env={**conda.env(), "CONDA_OVERRIDE_CUDA": "12.4"},
            timeout=300,
            check=False,
        )
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert done.returncode == 2, done.stderr[-2000:]
    assert "error: conda: HTTPError: 404" in done.stderr and "internal error" not in done.stderr
    assert S not in done.stdout + done.stderr
