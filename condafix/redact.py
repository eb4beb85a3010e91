"""Remove secrets from URLs before anything is printed, logged or put in JSON.

Handles userinfo (``scheme://user:pass@host``, also with unescaped ``@``/``#``/``/`` in the
password, IPv6 hosts, and the scheme-less ``user:pass@proxy:3128`` form users put in
``http_proxy``), anaconda.org tokens in paths (``/t/<token>/``) and ``token=`` query values.
"""

from __future__ import annotations

import re

_URL = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<rest>[^\s'\"<>]+)")
# scheme-less ``user:pass@host:port`` (a common broken http_proxy value)
_BARE_USERINFO = re.compile(
    r"(?<![\w/:@*])[^\s'\"<>=:/@]+:(?!//)[^\s'\"<>]*@(?=(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::[^/?#@\s'\"]*)?(?:[/\s'\"]|$))"
)
# the last '@' that is followed by a host (name, IPv4 or [IPv6]) and an optional port, then the end or / ? #
_HOST_AFTER_AT = re.compile(r"@(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::[^/?#@\s]*)?(?=[/?#]|$)")
_TOKEN_PATH = re.compile(r"/t/[^/\s]+")
_TOKEN_QUERY = re.compile(r"(?i)([?&](?:token|access_token|api_key|password)=)[^&#\s]+")


def _redact_url(scheme: str, rest: str) -> str:
    at = None
    for match in _HOST_AFTER_AT.finditer(rest):
        at = match.start()
    if at is not None:
        rest = "***" + rest[at:]
    rest = _TOKEN_PATH.sub("/t/***", rest)
    return scheme + _TOKEN_QUERY.sub(r"\1***", rest)


def redact(text: str) -> str:
    """``http://user:pw@host`` -> ``http://***@host``; ``/t/abc123/`` -> ``/t/***/``."""
    if "@" not in text and "/t/" not in text and "=" not in text:
        return text
    text = _URL.sub(lambda m: _redact_url(m["scheme"], m["rest"]), text)
    return _BARE_USERINFO.sub("***@", text)
