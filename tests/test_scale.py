"""Scale (issue 22 finding 9): a history of 250k specs and a 200 MB record are read in memory bounded by
their size, never a multiple of it, and every command still answers (no misleading "repodata timeout").

No timing assertions: memory is measured with tracemalloc (Python's own allocations, deterministic) against
bounds the code before this work exceeded several times over; the commands are checked for their answers.
"""

from __future__ import annotations

import ast
import json
import sys
import tracemalloc
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from condafix.change import others
from condafix.env import condameta
from condafix.errors import InspectError

from .test_apply import BROKEN, apply_cmd, rollback_cmd, run

SPECS = 250_000


@pytest.fixture
def fresh_cache() -> Iterator[None]:
    """parse_history is cached by text: each measurement parses anew."""
    condameta.parse_history.cache_clear()
    yield
    condameta.parse_history.cache_clear()


def _peak(call: Callable[[], object]) -> int:
    tracemalloc.start()
    try:
        call()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _many_specs(count: int) -> str:
    specs = [f"pkg{i} >=1.{i % 7}" for i in range(count)]
    return f"==> 2024-01-01 00:00:00 <==\n# cmd: conda install pkg0\n+c::pkg0-1-0\n# update specs: {specs!r}\n"


def test_a_history_of_250k_specs_is_read_in_memory_bounded_by_its_size(fresh_cache: None) -> None:
    text = _many_specs(SPECS)

    def read() -> None:
        history = condameta.parse_history(text)
        assert len(history.requested_specs()) == SPECS and history.state() == {"c::pkg0-1-0"}

    # before: ast.literal_eval of the one 4.6 MB line peaked at 60 times its size (281 MB); now ~9
    assert _peak(read) < 25 * len(text)


def test_the_state_after_250k_revisions_is_one_replay_not_a_set_per_revision(fresh_cache: None) -> None:
    """Each revision adds a package: a set per revision (as states() keeps) grows with the square."""
    text = "".join(f"==> 2024-01-01 00:00:00 <==\n# cmd: conda install p{i}\n+c::p{i}-1-0\n" for i in range(5_000))
    found: list[int] = []
    # before: a set per revision, 12.5 million entries for these 5,000 revisions (601 MB); now ~15 times the text
    assert _peak(lambda: found.append(len(condameta.parse_history(text).state()))) < 25 * len(text)
    assert found == [5_000]


_LINE = st.text(st.characters(blacklist_characters="\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"), max_size=12)


@settings(max_examples=2_000, deadline=None)
@given(st.lists(_LINE, max_size=6), st.sampled_from(["repr", "spaced", "trailing comma", "double quotes"]))
def test_spec_lists_read_exactly_as_literal_eval_reads_them(items: list[str], style: str) -> None:
    """conda reads ``# update specs: [...]`` with ``ast.literal_eval``; condafix's reader without an AST must
    agree on every list it accepts, and hand the rest to literal_eval (the oracle here, as in conda)."""
    if style == "repr":
        text = repr(items)
    elif style == "spaced":
        text = "[ " + " ,  ".join(repr(i) for i in items) + " ]"
    elif style == "trailing comma":
        text = "[" + "".join(f"{i!r}," for i in items) + "]"
    else:
        text = "[" + ", ".join('"' + i + '"' for i in items) + "]"
    history = f"==> 2024-01-01 00:00:00 <==\n# cmd: conda install x\n# update specs: {text}\n"
    with warnings.catch_warnings():  # literal_eval warns of escapes such as '\l' (as it does inside conda)
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            expected: object = tuple(s for s in ast.literal_eval(text) if s and not s.endswith("@"))
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            expected = "refused"
        try:
            got: object = condameta.parse_history(history).revisions[0].update_specs
        except InspectError:
            got = "refused"
    assert got == expected, text


def _record(name: str, version: str, files: int = 0) -> dict[str, object]:
    pad = "x" * 900
    return {
        "name": name,
        "version": version,
        "build": "0",
        "url": f"https://example.invalid/{name}-{version}-0.conda",
        "files": [f"lib/{name}/{i}-{pad}" for i in range(files)],
    }


def _write(root: Path, record: dict[str, object]) -> Path:
    path = root / "conda-meta" / f"{record['name']}-{record['version']}-0.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record))
    return path


def test_a_big_record_the_change_leaves_is_never_parsed_for_the_later_changes_check(tmp_path: Path) -> None:
    prefix, snapshot = tmp_path / "env", tmp_path / "snapshot"
    big = _record("numpy", "2.0.0", files=40_000)  # ~37 MB, the same build in the env and the snapshot
    for root in (prefix, snapshot):
        _write(root, big)
    _write(snapshot, _record("libzlib", "1.2.13"))
    _write(prefix, _record("libzlib", "1.3.1"))  # another tool's install during the change
    found: list[list[tuple[str, str]]] = []
    # before: both copies parsed and held together (115 MB of Python objects); now only the two small ones
    peak = _peak(lambda: found.append(others.foreign_records(prefix, snapshot, {})))
    assert found == [[("libzlib", "libzlib 1.2.13 0 -> 1.3.1 0")]]
    assert peak < 4_000_000, peak


def test_channel_urls_are_kept_without_reading_records_the_install_left(tmp_path: Path) -> None:
    from condafix.backends.rattler import install as install_rb

    prefix = tmp_path / "env"
    big = _write(prefix, _record("numpy", "2.0.0", files=40_000))
    small = _write(prefix, _record("cuda-version", "12.9"))
    before = install_rb.record_stamps(prefix)
    small.unlink()
    small = _write(prefix, {**_record("cuda-version", "12.4"), "url": "file:///cache/cuda-version-12.4-0.conda"})
    kept = big.read_bytes()
    urls = {big.name: "https://other.invalid/numpy-2.0.0-0.conda", small.name: "https://ch.invalid/cv-12.4-0.conda"}
    peak = _peak(lambda: install_rb.keep_channel_urls(prefix, urls, before))
    assert json.loads(small.read_text())["url"] == "https://ch.invalid/cv-12.4-0.conda"  # the installed one
    assert big.read_bytes() == kept  # the one the install left: not read, not rewritten
    assert peak < 4_000_000, peak  # before: every listed record was parsed, the 37 MB one too


def test_every_command_answers_on_an_env_whose_history_holds_250k_specs(
    installed_env: Callable[..., Path], cli_env: dict[str, str]
) -> None:
    """The specs are of packages the env does not have (conda drops those): the solve gets the env's own.
    On b1aaa3b this took 135 s and 2.3 GB, then ended in a misleading 'repodata timeout'."""
    prefix = installed_env(BROKEN, cuda="12.9")
    with open(prefix / "conda-meta" / "history", "a", encoding="utf-8") as out:
        out.write(_many_specs(SPECS).replace("+c::pkg0-1-0\n", ""))
    doctor = run([sys.executable, "-m", "condafix", "doctor", "-p", str(prefix), "--cuda", "12.4"], cli_env)
    plan = run([sys.executable, "-m", "condafix", "cuda", "-p", str(prefix), "--cuda", "12.4", "--json"], cli_env)
    apply = run(apply_cmd(prefix, "--yes"), cli_env)
    rollback = run(rollback_cmd(prefix, "--yes"), cli_env)
    for done in (doctor, plan, apply, rollback):
        assert done.returncode == 0, done.stderr[-2000:]
        assert "timeout" not in done.stderr.lower() and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert json.loads(plan.stdout)["result"]["status"] == "change"
    history = condameta.read_history(prefix)
    assert len(history.requested_specs()) >= SPECS  # never truncated: the 250k specs are still conda's
    assert (prefix / "conda-meta" / "cuda-version-12.9-h0_3.json").is_file()
