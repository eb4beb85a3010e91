"""The one place condafix starts child processes.

Every child gets a bounded run time (a hung driver or a stalled proxy must not hang condafix)
and an environment built from ``os.environ`` plus explicit overrides, where ``None`` deletes a
variable (pipx's ``run_subprocess`` convention).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TextIO


@dataclass(frozen=True, kw_only=True)
class RunResult:
    """What a child did; ``error`` is set when it could not start or timed out."""

    argv: tuple[str, ...]
    returncode: int | None
    stdout: str
    stderr: str
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.returncode == 0


def child_env(overrides: Mapping[str, str | None] | None = None, *, network: bool = False) -> dict[str, str]:
    """Copy of the environment with overrides applied (None removes a key).

    Children that use the network (conda, mamba) start from the sanitized proxy environment.
    """
    if network:
        from condafix import proxy

        env = proxy.POLICY.environ()
    else:
        env = dict(os.environ)
    for key, value in (overrides or {}).items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def run(
    argv: Sequence[str],
    *,
    timeout: float,
    env_overrides: Mapping[str, str | None] | None = None,
    network: bool = False,
    relay: TextIO | None = None,
) -> RunResult:
    """Run argv to completion with a timeout; never raises for a missing or hung program.

    ``relay``: stream the child's stdout and stderr to that stream as they come (a conda/mamba install
    the user watches), instead of capturing them; the command layer lends it (its stderr), so a tool's
    output never lands in condafix's own ``--json`` stdout.
    """
    import subprocess  # here, not at import: doctor on a host without a GPU starts no child

    args = tuple(argv)
    if relay is not None:
        return _streamed(args, timeout, child_env(env_overrides, network=network), relay)
    try:
        done = subprocess.run(
            args,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout,
            env=child_env(env_overrides, network=network),
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except FileNotFoundError:
        return RunResult(argv=args, returncode=None, stdout="", stderr="", error=f"{args[0]} not found")
    except PermissionError as exc:
        return RunResult(
            argv=args, returncode=None, stdout="", stderr="", error=f"{args[0]} not runnable: {exc.strerror}"
        )
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout if isinstance(exc.stdout, str) else ""
        return RunResult(argv=args, returncode=None, stdout=out, stderr="", error=f"timed out after {timeout:g} s")
    except OSError as exc:
        return RunResult(
            argv=args, returncode=None, stdout="", stderr="", error=f"could not start {args[0]}: {exc.strerror}"
        )
    return RunResult(argv=args, returncode=done.returncode, stdout=done.stdout or "", stderr=done.stderr or "")


def _streamed(args: tuple[str, ...], timeout: float, env: dict[str, str], out: TextIO) -> RunResult:
    """Relay the child's stdout/stderr to ours through the output edge: conda prints channel URLs with
    their credentials in its error reports, and what condafix shows is redacted (redact.RedactingWriter)."""
    import subprocess
    import threading

    from condafix.redact import RedactingWriter

    streams = (RedactingWriter(lambda: out), RedactingWriter(lambda: out))
    try:
        child = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=env
        )
    except FileNotFoundError:
        return RunResult(argv=args, returncode=None, stdout="", stderr="", error=f"{args[0]} not found")
    except PermissionError as exc:
        return RunResult(
            argv=args, returncode=None, stdout="", stderr="", error=f"{args[0]} not runnable: {exc.strerror}"
        )
    except OSError as exc:
        return RunResult(
            argv=args, returncode=None, stdout="", stderr="", error=f"could not start {args[0]}: {exc.strerror}"
        )

    def relay(pipe: object, stream: RedactingWriter) -> None:
        import codecs

        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        read = pipe.read1 if hasattr(pipe, "read1") else pipe.read  # type: ignore[attr-defined]
        while chunk := read(65536):
            stream.write(decoder.decode(chunk))  # whole lines leave, redacted; a partial one waits
        stream.write(decoder.decode(b"", final=True))
        stream.flush()

    threads = [
        threading.Thread(target=relay, args=(child.stdout, streams[0]), daemon=True),
        threading.Thread(target=relay, args=(child.stderr, streams[1]), daemon=True),
    ]
    for thread in threads:
        thread.start()
    try:
        code = child.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()
        for thread in threads:
            thread.join(5)
        return RunResult(argv=args, returncode=None, stdout="", stderr="", error=f"timed out after {timeout:g} s")
    for thread in threads:
        thread.join(5)
    return RunResult(argv=args, returncode=code, stdout="", stderr="")
