"""A Rust panic inside py-rattler's installer is held off the terminal (fd 2) and becomes one line, while
everything else written to fd 2 meanwhile (progress bars redrawn with ``\\r``, Python's own lines) passes on.

The panic text is the one rattler printed when conda changed the prefix mid-install (tests/test_shared_prefix.py
reproduces that race with real conda)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

from condafix.backends.rattler import install

PANIC = (
    b"\nthread 'tokio-rt-worker' (27418) panicked at /home/runner/work/rattler/rattler/crates/path_resolver/"
    b"src/lib.rs:476:13:\nExpected just reordering, got something else.\nOld:\n[\n    PackageName(\n]\n"
    b"note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace\n"
)


def relayed(*chunks: bytes) -> tuple[bytes, list[str]]:
    """What ``_relay`` passes on and what it holds, through real pipes, chunk by chunk."""
    read_end, write_end = os.pipe()
    out_read, out_write = os.pipe()
    held: list[str] = []
    for chunk in chunks:
        os.write(write_end, chunk)
    os.close(write_end)
    install._relay(read_end, out_write, held)
    os.close(out_write)
    with os.fdopen(out_read, "rb") as passed:
        return passed.read(), held


def test_progress_passes_at_once_and_the_panic_is_held() -> None:
    passed, held = relayed(b"downloading 10%\r", b"downloading 20%\r", b"linked libzlib\n", PANIC)
    assert passed == b"downloading 10%\rdownloading 20%\rlinked libzlib\n\n"
    assert held[0].startswith("thread 'tokio-rt-worker' (27418) panicked at ")
    assert held[1] == "Expected just reordering, got something else."
    assert any("RUST_BACKTRACE" in line for line in held)


def test_a_line_that_only_starts_like_a_panic_is_passed_on() -> None:
    passed, held = relayed(b"thread", b" 'main' is not a panic\n", b"thr")
    assert passed == b"thread 'main' is not a panic\nthr" and held == []


def test_fd_2_is_given_back_and_python_output_still_reaches_it() -> None:
    """In a child: a write to fd 2 inside the window passes on, the panic-shaped one is held, fd 2 is restored."""
    code = textwrap.dedent(
        """
        import os, sys
        from condafix.backends.rattler import install
        with install.rust_panics_held() as held:
            print("inside", file=sys.stderr, flush=True)
            os.write(2, b"thread 'w' panicked at x.rs:1:1:\\nboom\\n")
        print("after", file=sys.stderr, flush=True)
        print(held)
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert done.stderr == "inside\nafter\n"
    assert done.stdout.strip() == "[\"thread 'w' panicked at x.rs:1:1:\", 'boom']"
