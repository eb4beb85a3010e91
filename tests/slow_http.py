"""A real HTTP server on 127.0.0.1 that serves a channel's packages slowly, or stops mid-body."""

from __future__ import annotations

import functools
import http.server
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO


@dataclass
class Pace:
    """How packages are sent: ``chunk`` bytes every ``delay`` s; ``pause_s`` of silence in the
    middle of every package whose file name contains ``pause_on``."""

    chunk: int = 64
    delay: float = 0.05
    pause_on: str | None = None
    pause_s: float = 0.0
    whole: list[str] = field(default_factory=list)  # packages sent to the end (a cancelled one is not)


class _SlowHandler(http.server.SimpleHTTPRequestHandler):
    pace = Pace()

    def log_message(self, format: str, *args: object) -> None:
        pass

    def copyfile(self, source: BinaryIO, outputfile: BinaryIO) -> None:  # type: ignore[override]
        if not self.path.endswith((".tar.bz2", ".conda")):
            super().copyfile(source, outputfile)  # type: ignore[arg-type]
            return
        pace, sent, paused = self.pace, 0, False
        try:
            while block := source.read(pace.chunk):
                outputfile.write(block)
                outputfile.flush()
                sent += len(block)
                if pace.pause_on and pace.pause_on in self.path and not paused and sent >= pace.chunk * 2:
                    paused = True
                    time.sleep(pace.pause_s)
                time.sleep(pace.delay)
            pace.whole.append(self.path)
        except (BrokenPipeError, ConnectionResetError):
            pass


@contextmanager
def slow_server(directory: Path, pace: Pace) -> Iterator[str]:
    """Serve ``directory``; yields ``http://127.0.0.1:PORT``."""
    handler = type("Handler", (_SlowHandler,), {"pace": pace})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(directory)))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
