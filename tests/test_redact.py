"""The redactor as a pure function, and the output edge that applies it (render.Output)."""

from __future__ import annotations

import io
import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from condafix.cli import render
from condafix.errors import CondafixError, Hint
from condafix.redact import RedactingWriter, redact

SECRET = "Zq9xS3cr3t"

# Each credential form once, bare. The cases come from the attack report (issue 15) and what proxies,
# anaconda.org, Artifactory/Nexus mirrors and S3-style presigned URLs put into URLs.
FORMS = [
    f"http://user:{SECRET}@proxy.corp:3128",
    f"http://user:{SECRET}@proxy.corp",
    f"https://user:{SECRET}@repo.example/conda-forge",
    f"http://{SECRET}@proxy.corp:3128",
    f"http://{SECRET}:x-oauth-basic@proxy.corp",
    f"http://user:{SECRET}@[::1]:3128",
    f"http://user:{SECRET}@[2001:db8::1]",
    f"http://u:{SECRET}@[::1",  # malformed IPv6: printed whole by `proxy` before
    f"http://user:{SECRET}@10.0.0.1",
    f"socks5h://user:{SECRET}@proxy.corp:1080",
    f"HTTP://USER:{SECRET}@PROXY.CORP:3128",
    f"http://user:p@{SECRET}@proxy.corp:3128",
    f"http://user:p#{SECRET}@proxy.corp:3128",
    f"http://user:p/{SECRET}@proxy.corp:3128",
    f"http://user:{SECRET})@proxy.corp:3128",
    f"http://user:{SECRET},x@proxy.corp",
    f"http://user:{SECRET}@proxy.corp:notaport",
    f"http://us%40er:{SECRET}@proxy.corp:3128",
    f"http://user:{SECRET}%40x@proxy.corp:3128",
    f"http%3A%2F%2Fuser%3A{SECRET}%40proxy.corp%3A3128",
    f"http%253A%252F%252Fuser%253A{SECRET}%2540proxy.corp",
    f"https://repo.example/ch?u=http%3A%2F%2Fa%3A{SECRET}%40h",
    f"user:{SECRET}@proxy.corp:3128",
    f"{SECRET}@proxy.corp:3128",
    f"//user:{SECRET}@proxy.corp",
    f"http_proxy=user:{SECRET}@proxy.corp:3128",
    f"HTTPS_PROXY=http://user:{SECRET}@proxy.corp:3128",
    f"https://conda.anaconda.org/t/{SECRET}/conda-forge",
    f"https://conda.anaconda.org/t/{SECRET}",
    f"t/{SECRET}/conda-forge",  # what channel_name leaves of an anaconda.org token URL
    f"https://bob:{SECRET}@repo.example/t/{SECRET}/chan",
    f"https://repo.example/ch?token={SECRET}",
    f"https://repo.example/ch?a=1&access_token={SECRET}",
    f"https://repo.example/ch?api_key={SECRET}&b=2",
    f"https://bucket.s3.example/x.conda?X-Amz-Signature={SECRET}",
    f"https://repo.example/ch?password={SECRET}#frag",
    f"CONDA_TOKEN={SECRET}",
    f"Authorization: Bearer {SECRET}",
    f"Authorization: Basic {SECRET}==",
    f"ftp://user:{SECRET}@ftp.example:21/pub",
    f"file://user:{SECRET}@localhost/srv/channel",
    f"http://a:{SECRET}@h1,http://b:{SECRET}@h2",
]

WRAPS = [
    "{}",
    " {} ",
    "({})",
    "[{}]",
    "{{{}}}",
    "<{}>",
    "'{}'",
    '"{}"',
    "`{}`",
    "|{}|",
    "{},",
    "{};",
    "{}.",
    "({}),",
    "url={}",
    "-c {} pkg",
    "error: could not connect through {} (os error 111)",
    "channels: [{}, conda-forge]",
    "\x1b[1;36m{}\x1b[0m",
    "line one\n{}\nline three",
]


def test_there_are_at_least_forty_forms() -> None:
    assert len(FORMS) >= 40


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("wrap", WRAPS)
def test_no_form_leaks_in_any_punctuation(form: str, wrap: str) -> None:
    text = wrap.format(form)
    assert SECRET not in redact(text), text


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("(http://user:pw@host)", "(http://***@host)"),
        ("http://user:pw@host:3128/path", "http://***@host:3128/path"),
        ("see [http://u:p@[::1]:8080], then", "see [http://***@[::1]:8080], then"),
        (
            "https://conda.anaconda.org/t/abc-123/conda-forge/linux-64",
            "https://conda.anaconda.org/t/***/conda-forge/linux-64",
        ),
        ("-c t/abc-123/chan", "-c t/***/chan"),
        ("https://h/c?token=abc&x=1", "https://h/c?token=***&x=1"),
        ("(https://h/c?token=abc).", "(https://h/c?token=***)."),
        ("HTTPS_PROXY=user:pw@proxy:3128", "HTTPS_PROXY=***@proxy:3128"),
        ("http://a:b@h1,http://c:d@h2", "http://***@h1,http://***@h2"),
    ],
)
def test_what_is_shown_instead(raw: str, shown: str) -> None:
    assert redact(raw) == shown


@pytest.mark.parametrize(
    "text",
    [
        "cuda-version=12.4 exists on conda-forge",
        'conda install -n base -c conda-forge "cuda-version=12.4"',
        "mail bob@example.com for access",
        "git@github.com:conda/conda.git",
        "numba-cuda >=0.14 needs cuda-version >=12.8,<13",
        "https://conda.anaconda.org/conda-forge/noarch/repodata.json",
        "a basic requirement: ptxas error at line 4",
        "/usr/local/cuda/bin/nvcc",
        "",
    ],
)
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert redact(text) == text


def test_idempotent_on_every_form() -> None:
    for form in FORMS:
        once = redact(form)
        assert redact(once) == once


@pytest.mark.parametrize("unit", ["a", "@", "a:", "http://", "t/", "token=", "%40", "a@", "://@", "Bearer ", "\x1b[1m"])
def test_linear_on_adversarial_input(unit: str) -> None:
    # a quadratic scan of these 400,000-character strings would not finish within the test run
    text = unit * (400_000 // len(unit))
    assert len(redact(text)) <= 2 * len(text)


USERINFO_CHARS = st.characters(blacklist_characters="\r\n\t \x1b", blacklist_categories=("Cs", "Zs"))


@settings(max_examples=300, deadline=None)
@given(
    prefix=st.text(max_size=30),
    user=st.text(alphabet=USERINFO_CHARS, max_size=8),
    suffix=st.text(max_size=30),
    port=st.one_of(st.none(), st.integers(1, 65535)),
    host=st.sampled_from(["proxy.corp", "10.0.0.1", "[::1]", "localhost", "repo.example.com"]),
)
def test_userinfo_never_survives(prefix: str, user: str, suffix: str, port: int | None, host: str) -> None:
    netloc = host + (f":{port}" if port else "")
    url = f"http://{user}:{SECRET}@{netloc}/chan"
    assert SECRET not in redact(f"{prefix} {url} {suffix}")


# ---------------------------------------------------------------- the output edge


def test_output_redacts_text_json_and_errors() -> None:
    url = f"https://bob:{SECRET}@repo.example/t/{SECRET}/chan"
    shown = "https://***@repo.example/t/***/chan"
    stdout, stderr = io.StringIO(), io.StringIO()
    out = render.Output(stdout, stderr)
    out.json("doctor", {"channel": url, url: [url, {"k": url}], "n": 3}, 0)
    doc = json.loads(stdout.getvalue())
    assert doc["result"] == {"channel": shown, shown: [shown, {"k": shown}], "n": 3}
    out.text(f"using {url}")
    out.error(
        "doctor", CondafixError(summary=f"cannot reach {url}", hints=(Hint(code="x", text=f"try {url}"),)), as_json=True
    )
    out.internal_error(ValueError(f"boom {url}"))
    text = stdout.getvalue() + stderr.getvalue()
    assert SECRET not in text
    assert f"using {shown}" in text and f"error: cannot reach {shown}" in stderr.getvalue()
    assert f"boom {shown}" in stderr.getvalue()


def test_writer_redacts_lines_split_across_writes() -> None:
    target = io.StringIO()
    writer = RedactingWriter(target)
    for piece in ("conda install -c http://us", f"er:{SECRET}", "@host/chan pkg\nnext"):
        writer.write(piece)
    writer.flush()
    assert SECRET not in target.getvalue()
    assert target.getvalue() == "conda install -c http://***@host/chan pkg\nnext"


def test_every_report_function_takes_a_stream_and_redacts() -> None:
    from condafix.files.edits import EnvFileResult

    url = f"http://bob:{SECRET}@repo.example/c"
    stdout = io.StringIO()
    result = EnvFileResult(
        path="environment.yml",
        target_cuda="12.4",
        family="cuda-version",
        pin="cuda-version=12.4",
        checked=f"cuda-version=12.4 exists on {url}",
        edits=(),
        notes=(),
        diff=f"-  - {url}\n+  - {url}\n",
        changed=True,
    )
    render.envfile_text(result, out=render.Output(stdout, io.StringIO()))
    assert SECRET not in stdout.getvalue()
    assert "exists on http://***@repo.example/c" in stdout.getvalue()


def test_logs_and_warnings_are_redacted() -> None:
    import logging
    import warnings

    stderr = io.StringIO()
    out = render.Output(io.StringIO(), stderr)
    render.capture_logs(out)
    try:
        logging.getLogger("rattler").warning("retrying https://u:%s@host/x", SECRET)
        warnings.warn(f"cache at https://u:{SECRET}@host is stale", UserWarning, stacklevel=1)
    finally:
        root = logging.getLogger()
        for handler in list(root.handlers):
            if type(handler).__name__ == "_RedactingHandler":
                root.removeHandler(handler)
        logging.captureWarnings(False)
    assert SECRET not in stderr.getvalue()
    assert re.search(r"rattler: WARNING: retrying https://\*\*\*@host/x", stderr.getvalue())
