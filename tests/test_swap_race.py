"""A user who can write the env swaps a package folder for a symlink to somewhere else while
`condafix rollback` runs: nothing outside the prefix is ever deleted or replaced, and what the
rollback says about the env's state is true (issue 22, the symlink swap race)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
from collections import Counter
from pathlib import Path

import pytest

from .test_apply import BROKEN, apply_cmd, rollback_cmd, run

ROUNDS = int(os.environ.get("CONDAFIX_TEST_ROUNDS", "3"))  # the long run: CONDAFIX_TEST_ROUNDS=20 or more
FOLDER = "share/condafix-fixture"  # every fixture package's files are in it


def _digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() or p.is_symlink()
    }


def _records(prefix: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in (prefix / "conda-meta").glob("*.json")}


class _Flipper(threading.Thread):
    """Swap ``folder`` for a symlink to ``bait`` and back, as fast as it can, until stopped."""

    def __init__(self, folder: Path, bait: Path) -> None:
        super().__init__(daemon=True)
        self.folder, self.bait, self.aside = folder, bait, folder.with_name(".aside")
        self.stop = threading.Event()
        self.flips = 0

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                os.rename(self.folder, self.aside)
                os.symlink(self.bait, self.folder)
                self.flips += 1
                os.unlink(self.folder)
                os.rename(self.aside, self.folder)
            except OSError:
                self.heal()

    def heal(self) -> None:
        if self.folder.is_symlink():
            self.folder.unlink()
        if self.aside.exists() and not self.folder.exists():
            os.rename(self.aside, self.folder)


@pytest.fixture(scope="module")
def applied(tmp_path_factory: pytest.TempPathFactory, channel: Path, pkgs_cache: Path) -> Path:
    """One env with condafix's change applied (copied for every round)."""
    from .envs import install_env

    root = tmp_path_factory.mktemp("swap")
    prefix = install_env(channel, root / "env", BROKEN, cuda="12.9", cache=pkgs_cache)
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env.update(NO_COLOR="1", CONDAFIX_PKGS_DIR=str(pkgs_cache), CONDAFIX_CACHE_DIR=str(root / "cache"))
    done = run(apply_cmd(prefix, "--yes"), env)
    assert done.returncode == 0, done.stderr
    # a wider window: the new cuda-version build owns 300 more files in the swapped folder
    (record_path,) = (prefix / "conda-meta").glob("cuda-version-12.4-*.json")
    record = json.loads(record_path.read_text())
    extra = [f"{FOLDER}/extra-{n:03}.txt" for n in range(300)]
    for rel in extra:
        (prefix / rel).write_text(f"{rel}\n")
    record["files"] = [*record["files"], *extra]
    record["paths_data"]["paths"] += [{"_path": rel, "path_type": "hardlink"} for rel in extra]
    record_path.write_text(json.dumps(record))
    return prefix


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_a_folder_swapped_for_a_symlink_during_rollback_never_touches_files_outside(
    applied: Path, tmp_path: Path, cli_env: dict[str, str], round_: int
) -> None:
    prefix = tmp_path / "env"
    shutil.copytree(applied, prefix, symlinks=True)
    bait = tmp_path / "outside"
    shutil.copytree(prefix / FOLDER, bait)  # files of the same names, somebody else's
    (bait / "precious.txt").write_text("not condafix's\n")
    outside = _digest(bait)
    records = _records(prefix)
    flipper = _Flipper(prefix / FOLDER, bait)
    flipper.start()
    try:
        done = run(rollback_cmd(prefix, "--yes"), cli_env)
    finally:
        flipper.stop.set()
        flipper.join()
        flipper.heal()
    assert _digest(bait) == outside, "a file outside the prefix was deleted or replaced"
    assert "Traceback" not in done.stderr
    if done.returncode != 0:
        said = done.stderr.strip().splitlines()[0] if done.stderr.strip() else ""
        assert done.returncode in (2, 4), done.stderr
        if "nothing was changed" in said:
            assert _records(prefix) == records, "told 'nothing was changed' after records were removed"
        else:
            assert "half restored" in said or "journal is kept" in said, said
        assert run(rollback_cmd(prefix, "--yes"), cli_env).returncode == 0  # the folder is back: it finishes
    names = {json.loads(v)["name"]: k for k, v in _records(prefix).items()}
    assert names["cuda-version"] == "cuda-version-12.9-h0_3.json"
    _OUTCOMES[done.returncode] += 1
    print(f"\nswap round {round_}: rc {done.returncode}, {flipper.flips} flips, outcomes so far {dict(_OUTCOMES)}")


_OUTCOMES: Counter[int] = Counter()
