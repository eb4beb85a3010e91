"""Side-by-side start-up benchmark: `condafix doctor` vs `numba -s` vs `env-doctor check`.

Runs each command N times, interleaved (so machine noise hits all alike), and prints the median
wall time and its ratio to `condafix doctor`. Peers come from PyPI:

    python -m venv /tmp/peers && /tmp/peers/bin/pip install numba env-doctor
    python bench/startup.py --peers-bin /tmp/peers/bin --runs 15
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path


def timed(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=11)
    parser.add_argument("--peers-bin", type=Path, default=None, help="bin/ of a venv with numba and env-doctor")
    args = parser.parse_args()

    def find(name: str) -> str | None:
        if args.peers_bin and (args.peers_bin / name).exists():
            return str(args.peers_bin / name)
        return shutil.which(name)

    commands: dict[str, list[str]] = {"python -c pass": [sys.executable, "-c", "pass"]}
    condafix = find("condafix")
    if condafix is None:
        sys.exit("condafix is not installed (pip install .)")
    commands["condafix doctor"] = [condafix, "doctor"]
    for label, name, extra in (("numba -s", "numba", ["-s"]), ("env-doctor check", "env-doctor", ["check"])):
        exe = find(name)
        if exe:
            commands[label] = [exe, *extra]
        else:
            print(f"skipped {label}: {name} not found (see --peers-bin)")
    for argv in commands.values():  # warm the page cache once
        timed(argv)
    samples: dict[str, list[float]] = {label: [] for label in commands}
    for _ in range(args.runs):
        for label, argv in commands.items():
            samples[label].append(timed(argv))
    base = statistics.median(samples["condafix doctor"])
    print(f"{'command':<20} {'median s':>9} {'x condafix doctor':>18}   ({args.runs} interleaved runs)")
    for label, values in samples.items():
        median = statistics.median(values)
        print(f"{label:<20} {median:>9.3f} {median / base:>18.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
