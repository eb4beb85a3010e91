"""Remove secrets from URLs before anything is printed, logged or put in JSON."""

from __future__ import annotations

import re

# userinfo in any scheme://user:pass@host, and anaconda.org-style tokens in paths (/t/<token>/).
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/@\s]+)@")
_TOKEN = re.compile(r"/t/[^/\s]+")


def redact(text: str) -> str:
    """``http://user:pw@host`` -> ``http://***@host``; ``/t/abc123/`` -> ``/t/***/``."""
    text = _USERINFO.sub(lambda m: f"{m['scheme']}***@", text)
    return _TOKEN.sub("/t/***", text)
