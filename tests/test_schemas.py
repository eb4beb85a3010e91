"""The ``--json`` contract: one checked-in key list per schema (``tests/schemas/<name>.txt``).

Each document comes from a real run of the command on real fixtures (an env on disk, a local channel,
a lockfile, a paste). Its key paths (``result.fix.pins[]``, lists as ``[]``) must equal the list on disk:
adding, removing or renaming a key fails here, so a schema change is a deliberate edit of that list
and of the schema version (``condafix/<command>/v3``). Values are not compared: other tests own them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from .conftest import FIXTURES, SEED_ENV

SCHEMAS = Path(__file__).resolve().parent / "schemas"
BROKEN = ["numba-cuda", "python 3.12.3.*", "numpy 2.0.0.*"]


def key_paths(value: Any, prefix: str = "") -> set[str]:
    """Every key path of a JSON value; list items merge under ``[]``."""
    found: set[str] = set()
    if isinstance(value, dict):
        for key, item in value.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            found.add(path)
            found |= key_paths(item, path)
    elif isinstance(value, list):
        for item in value:
            found |= key_paths(item, f"{prefix}[]")
    return found


def condafix(*args: str, env: dict[str, str] | None = None, stdin: str | None = None) -> dict[str, Any]:
    full = {**os.environ, "NO_COLOR": "1", **(env or {})}
    done = subprocess.run(
        [sys.executable, "-m", "condafix", *args], input=stdin, capture_output=True, text=True,
        env=full, timeout=300, check=False,
    )  # fmt: skip
    assert done.stdout.strip(), done.stderr
    doc: dict[str, Any] = json.loads(done.stdout)
    return doc


def expected(name: str) -> set[str]:
    lines = (SCHEMAS / f"{name}.txt").read_text(encoding="utf-8").splitlines()
    return {line.strip() for line in lines if line.strip() and not line.startswith("#")}


def check(name: str, doc: dict[str, Any], schema: str) -> None:
    assert doc["schema"] == schema
    got = key_paths(doc)
    want = expected(name)
    assert got == want, f"{name}: added {sorted(got - want)}, missing {sorted(want - got)}"


def test_key_paths_see_a_renamed_key() -> None:
    """The comparison itself: a renamed nested key inside a list shows up as one added and one missing path."""
    before = key_paths({"result": {"verdicts": [{"name": "x", "cuda": "12.4"}]}})
    after = key_paths({"result": {"verdicts": [{"name": "x", "cuda_version": "12.4"}]}})
    assert before - after == {"result.verdicts[].cuda"} and after - before == {"result.verdicts[].cuda_version"}


def test_doctor(make_prefix: Callable[..., Path]) -> None:
    prefix = make_prefix(SEED_ENV)
    doc = condafix("doctor", "-p", str(prefix), "--cuda", "11.4", "--json")
    check("doctor", doc, "condafix/doctor/v3")
    # the seed env (toolkit 11.7 on an 11.4 driver) is a mismatch: the one vocabulary calls it an error
    assert doc["result"]["status"] == "mismatch" and doc["status"] == "error"
    assert {f["severity"] for f in doc["findings"]} <= {"ok", "info", "warning", "error"}


def test_explain() -> None:
    text = (FIXTURES / "errors" / "numba-seed-7.7-7.4.txt").read_text()
    check("explain", condafix("explain", "--no-detect", "--json", stdin=text), "condafix/explain/v3")


def test_proxy(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env.update(HOME=str(tmp_path), HTTPS_PROXY="http://127.0.0.1:9", XDG_CONFIG_HOME=str(tmp_path / "x"))
    check("proxy", condafix("proxy", "--json", "--no-connect", env=env), "condafix/proxy/v3")


def test_lock() -> None:
    lock = FIXTURES / "lockfiles" / "conda-lock" / "conda-lock.yml"
    check("lock", condafix("lock", str(lock), "--cuda", "12.4", "--json"), "condafix/lock/v3")


def test_error_document(tmp_path: Path) -> None:
    doc = condafix("doctor", "-p", str(tmp_path / "nowhere"), "--json")
    check("error", doc, "condafix/doctor/v3")
    assert doc["status"] == "error"


@pytest.fixture
def broken_env(installed_env: Callable[..., Path]) -> Path:
    return installed_env(BROKEN, cuda="12.9")


def test_cuda_plan_apply_and_rollback(broken_env: Path, cli_env: dict[str, str]) -> None:
    prefix = str(broken_env)
    plan = condafix("cuda", "-p", prefix, "--cuda", "12.4", "--json", env=cli_env)
    check("cuda-plan", plan, "condafix/cuda/v3")
    # every command speaks the one vocabulary: a plan that changes the env is a warning, each move a finding
    assert plan["result"]["status"] == "change" and plan["status"] == "warning"
    moved = {f["component"]: f["message"] for f in plan["findings"] if f["code"] == "plan-downgrade"}
    assert moved["cuda-version"] == "cuda-version 12.9 -> 12.4"
    applied = condafix("cuda", "-p", prefix, "--cuda", "12.4", "--apply", "--yes", "--json", env=cli_env)
    check("cuda-applied", applied, "condafix/cuda/v3")
    assert applied["status"] == "ok" and [f["code"] for f in applied["findings"]] == ["applied"]
    listed = condafix("rollback", "-p", prefix, "--list", "--json", env=cli_env)
    check("rollback-list", listed, "condafix/rollback/v3")
    preview = condafix("rollback", "-p", prefix, "--dry-run", "--json", env=cli_env)
    check("rollback-preview", preview, "condafix/rollback/v3")
    done = condafix("rollback", "-p", prefix, "--yes", "--json", env=cli_env)
    check("rollback-done", done, "condafix/rollback/v3")
