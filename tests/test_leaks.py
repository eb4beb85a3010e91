"""Secrets: models keep raw URLs, every output is redacted at the edge (the cases of issue 15)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from condafix.cli import render
from condafix.detect.driver import DriverInfo
from condafix.diagnose.verdict import diagnose
from condafix.env import envinfo

from .conftest import CUDA12_ENV, write_record

PASSWORD, TOKEN = "hunter2pw", "SECRETTOK123"
CRED_CHANNEL = f"https://bob:{PASSWORD}@repo.example.com/t/{TOKEN}/chan"


def cli(*args: str, env: dict[str, str] | None = None, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "condafix", *args],
        capture_output=True,
        text=True,
        env={**(env if env is not None else os.environ), "NO_COLOR": "1"},
        input=stdin,
        timeout=120,
        check=False,
    )


def credentialed_env(root: Path, channel: str = CRED_CHANNEL, *, masked: str | None = None) -> Path:
    """A CUDA 12.9 env whose records came from a credentialed channel (as conda/rattler write them)."""
    meta = root / "conda-meta"
    meta.mkdir(parents=True)
    for name, version, build, subdir in CUDA12_ENV:
        path = write_record(meta, name, version, build, subdir)
        record = json.loads(path.read_text())
        record["channel"] = f"{masked or channel}/{subdir}"
        record["url"] = f"{channel}/{subdir}/{record['fn']}"
        path.write_text(json.dumps(record))
    (meta / "history").write_text("")
    return root


def leaked(text: str) -> bool:
    return PASSWORD in text or TOKEN in text


def test_doctor_fix_line_and_json_are_redacted_but_the_model_is_raw(tmp_path: Path) -> None:
    prefix = credentialed_env(tmp_path / "env")
    for args in (
        ("doctor", "-p", str(prefix), "--cuda", "12.4"),
        ("doctor", "-p", str(prefix), "--cuda", "12.4", "--json"),
    ):
        done = cli(*args)
        assert done.returncode == 0, done.stderr
        assert not leaked(done.stdout + done.stderr), args
        assert "-c https://***@repo.example.com/t/***/chan" in done.stdout
    # the model keeps what a re-run and --via need
    report = diagnose(DriverInfo(cuda="12.4", source="--cuda", override=True), envinfo.read_env(prefix, "-p"))
    assert report.fix is not None and any(CRED_CHANNEL in c for c in report.fix.commands)


def test_channel_name_without_leading_slash_is_redacted() -> None:
    name = envinfo.channel_name(f"https://conda.anaconda.org/t/{TOKEN}/chan/linux-64")
    assert name == f"t/{TOKEN}/chan"
    shown = io.StringIO()
    render.Output(shown, shown).json("doctor", {"channel": name}, 0)
    assert not leaked(shown.getvalue()) and "t/***/chan" in shown.getvalue()


def test_masked_channel_in_records_falls_back_to_the_url(tmp_path: Path) -> None:
    # rattler writes the channel with its token masked; re-using that would query /t/********/
    prefix = credentialed_env(tmp_path / "env", masked="https://repo.example.com/t/********/chan")
    assert envinfo.read_env(prefix, "-p").channels == (CRED_CHANNEL,)


def test_plan_keeps_the_raw_channel_for_via_and_prints_it_redacted(
    installed_env: Callable[..., Path], http_channel: str
) -> None:
    from condafix.backends import choice
    from condafix.detect.target import TargetCuda
    from condafix.plan import planner

    prefix = installed_env(["numba-cuda"], cuda="12.9")
    credentialed = http_channel.replace("http://", f"http://bob:{PASSWORD}@")
    backend = choice.open_backend("rattler", prefix=prefix, offline=False)
    plan = planner.plan(
        prefix=prefix, target=TargetCuda(cuda="12.4", source="--cuda 12.4"), channels=[credentialed], backend=backend
    )
    assert plan.status == "change" and plan.channels == (credentialed,)
    assert any(credentialed in c for c in plan.commands)  # what --via hands to conda
    shown = io.StringIO()
    out = render.Output(shown, shown)
    render.plan_text(plan, out=out)
    render.print_json("cuda", plan, 0, out=out)
    assert PASSWORD not in shown.getvalue() and "http://***@127.0.0.1" in shown.getvalue()


def test_env_checked_line_is_redacted(tmp_path: Path, http_channel: str) -> None:
    credentialed = http_channel.replace("http://", f"http://bob:{PASSWORD}@")
    file = tmp_path / "environment.yml"
    file.write_text(f"name: x\nchannels:\n  - {credentialed}\ndependencies:\n  - cuda-version=12.9\n  - numba-cuda\n")
    for extra in ((), ("--json",)):
        done = cli("env", str(file), "--cuda", "12.4", *extra)
        assert done.returncode == 0, done.stderr
        assert "solve with it (http://***@127.0.0.1" in done.stdout, done.stdout
        assert not leaked(done.stdout + done.stderr)


@pytest.mark.parametrize("value", [f"http://u:{PASSWORD}@[::1", f"u:{PASSWORD}@proxy.corp:3128"])
def test_malformed_proxy_urls_are_redacted_in_text_json_and_hint(value: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env |= {"http_proxy": value, "HOME": str(tmp_path)}
    for extra in ((), ("--json",)):
        done = cli("proxy", "--no-connect", *extra, env=env)
        assert not leaked(done.stdout + done.stderr), done.stdout
        assert "***@" in done.stdout


def test_typer_usage_errors_are_redacted() -> None:
    done = cli("explain", "text", f"http://bob:{PASSWORD}@host/x")
    assert done.returncode == 2 and "unexpected extra argument" in done.stderr
    assert not leaked(done.stderr) and "http://***@host/x" in done.stderr
    done = cli("cuda", f"--bogus=http://bob:{PASSWORD}@host")
    assert done.returncode == 2 and not leaked(done.stderr)


def test_a_streamed_child_is_relayed_through_the_edge(capfd: pytest.CaptureFixture[str]) -> None:
    """`cuda --apply --via conda` streams conda's output; conda prints credentialed URLs in its error reports."""
    from condafix import runner

    script = (
        "import sys; print('channel URLs : http://bob:hunter2pw@127.0.0.1:1/chan/linux-64', flush=True); "
        "sys.stderr.write('HTTPError for url: http://127.0.0.1:1/t/SECRETTOK123/chan/noarch\\n'); sys.exit(3)"
    )
    done = runner.run([sys.executable, "-c", script], timeout=60, relay=sys.stderr)
    out, err = capfd.readouterr()
    assert done.returncode == 3 and done.error is None
    # both of the child's streams go to the one lent (stderr): none of it can land in a --json stdout
    assert out == "" and "channel URLs : http://***@127.0.0.1:1/chan/linux-64" in err
    assert "/t/***/chan/noarch" in err and not leaked(out + err)
    slow = runner.run([sys.executable, "-c", "import time; time.sleep(30)"], timeout=0.5, relay=sys.stderr)
    assert slow.error == "timed out after 0.5 s"
