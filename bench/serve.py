"""A local static HTTP server for the bench channels: threaded, HTTP/1.1 keep-alive, big backlog.

Why not ``python -m http.server``: its listen backlog of 5 drops the burst of parallel shard
requests a sharded solve makes (a cold 700k solve took 32 s that way), and HTTP/1.0 closes the
connection after each file. Run as its own process so serving never competes with the bench's
GIL; it prints ``PORT <n>`` once it listens.

    python bench/serve.py DIRECTORY [--port 0]
"""

from __future__ import annotations

import argparse
import contextlib
import email.utils
import functools
import http.server
import os
import stat
import sys


class Handler(http.server.SimpleHTTPRequestHandler):
    """Static files as a CDN serves them: ETag + Last-Modified, and a 304 that repeats both.

    http.server's own 304 carries no validators; rattler's shard-index cache then reads it as
    "modified" and fails with "unexpected status code (304 Not Modified)" (py-rattler 0.28).
    """

    protocol_version = "HTTP/1.1"  # keep-alive: SimpleHTTPRequestHandler sends Content-Length
    etag: str | None = None

    def send_head(self):  # type: ignore[no-untyped-def]
        self.etag = None
        try:
            info = os.stat(self.translate_path(self.path))
        except OSError:
            return super().send_head()
        if not stat.S_ISREG(info.st_mode):
            return super().send_head()
        self.etag = f'"{info.st_mtime_ns:x}-{info.st_size:x}"'
        modified = email.utils.formatdate(int(info.st_mtime), usegmt=True)
        match = self.headers.get("If-None-Match")
        since = self.headers.get("If-Modified-Since")
        if (match is not None and self.etag in match) or (match is None and since == modified):
            self.send_response(304)
            self.send_header("Last-Modified", modified)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        return super().send_head()

    def end_headers(self) -> None:
        if self.etag is not None:
            self.send_header("ETag", self.etag)
        super().end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


class Server(http.server.ThreadingHTTPServer):
    request_queue_size = 4096
    daemon_threads = True
    allow_reuse_address = True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("directory")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    server = Server(("127.0.0.1", args.port), functools.partial(Handler, directory=args.directory))
    sys.stdout.write(f"PORT {server.server_address[1]}\n")
    sys.stdout.flush()
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
