"""Remove credentials from text: the pure function the output edge (``render``) applies to every line.

Models keep raw URLs (``--via`` and channel re-use need them); only what leaves the process is
redacted. What is removed:

- userinfo of any URL (``scheme://user:pass@host``), with or without a port, IPv6 or malformed
  hosts, and passwords holding unescaped ``@ # / : ) , ;``: everything between ``://`` and the last
  ``@`` of the URL becomes ``***``;
- scheme-less userinfo (``user:pass@proxy:3128``, ``TOKEN@proxy:3128``, ``//user:pw@host``);
- anaconda.org tokens in paths, ``/t/<token>/`` and ``t/<token>/`` (what ``channel_name`` leaves);
- ``token=``, ``access_token=``, ``api_key=``, ``password=`` and similar query or ``NAME=`` values;
- ``Bearer``/``Basic`` credentials;
- the same inside percent-encoded text (``http%3A%2F%2Fuser%3Apw%40host``): such a word is shown decoded.

Text is cut into words at whitespace and ANSI escapes, so punctuation around a URL never hides
it, and every step is a bounded scan of one word: linear time on any input.
"""

from __future__ import annotations

import contextlib
import io
import re
from collections.abc import Callable
from typing import IO, Any
from urllib.parse import unquote

MASK = "***"

# words: runs between whitespace and terminal escape sequences (rich's colours)
_SEPARATORS = re.compile(r"(\s+|\x1b\[[0-9;?]*[A-Za-z])")
_SCHEME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+.-")
_OPENERS = "([{<'\"`/|,;="
_CLOSERS = ")]}>'\"`,;|.:!?"
# ``NAME=`` in front of a value (``http_proxy=user:pw@host``): kept, the value after it is judged
_ASSIGNMENT = re.compile(r"[A-Za-z_][\w.-]*=")
# ``@host:port`` after scheme-less userinfo: a port proves it is a proxy address, not an e-mail
_HOST_PORT = re.compile(r"(?:\[[0-9A-Fa-f:.%]*\]?|[A-Za-z0-9.-]+):[0-9]+")
_TOKEN_PATH = re.compile(r"(?<![^\s/(\[{<\"'`=,;:|])t/([^/\s'\"<>`]+)")
_SECRET_KEYS = (
    "access_token|auth_token|refresh_token|id_token|api_token|token|api_key|apikey|key|password|passwd|pwd"
    "|secret|client_secret|sig|signature|x-amz-signature|x-amz-credential|x-amz-security-token|credential|auth"
)
_KEY_VALUE = re.compile(rf"(?i)(?<![A-Za-z0-9])((?:{_SECRET_KEYS})=)([^&#\s'\"<>`]+)")
# ``Authorization: Basic dXNlcjpwdw==`` / ``Bearer <jwt>``: the credential after the scheme word
_AUTH_SCHEME = re.compile(r"(?i)(authorization:\s*(?:basic|bearer|token|digest)|bearer)(\s+)([^\s'\"<>`\x1b]{8,})")


def _peel(value: str) -> tuple[str, str]:
    """Split trailing sentence punctuation off a matched secret (``abc).`` -> ``abc``, ``).``)."""
    end = len(value)
    while end > 1 and value[end - 1] in _CLOSERS:
        end -= 1
    return value[:end], value[end:]


def _token_path(match: re.Match[str]) -> str:
    _secret, tail = _peel(match[1])
    return f"t/{MASK}{tail}"


def _key_value(match: re.Match[str]) -> str:
    _secret, tail = _peel(match[2])
    return f"{match[1]}{MASK}{tail}"


def _scheme_starts(word: str) -> list[tuple[int, int]]:
    """(start of scheme, index after ``://``) of each URL in the word, found without backtracking."""
    found: list[tuple[int, int]] = []
    floor = 0
    at = word.find("://")
    while at != -1:
        start = at
        while start > floor and word[start - 1] in _SCHEME_CHARS:
            start -= 1
        while start < at and not word[start].isalpha():  # a scheme starts with a letter
            start += 1
        if start < at:
            found.append((start, at + 3))
        floor = at + 3
        at = word.find("://", floor)
    return found


def _bare_userinfo(part: str) -> str:
    """``user:pw@proxy:3128`` / ``TOKEN@proxy:3128`` (no scheme) -> ``***@proxy:3128``; e-mails stay."""
    at = part.rfind("@")
    if at <= 0:
        return part
    head = 0
    assignment = _ASSIGNMENT.match(part)
    if assignment:
        head = assignment.end()
    while head < at and part[head] in _OPENERS:
        head += 1
    if head >= at:
        return part
    has_colon = part.find(":", head, at) != -1
    if not has_colon and not _HOST_PORT.match(part, at + 1):
        return part
    return part[:head] + MASK + part[at:]


def _redact_word(word: str) -> str:
    if "@" in word:
        starts = _scheme_starts(word)
        if not starts:
            word = _bare_userinfo(word)
        else:
            pieces = [_bare_userinfo(word[: starts[0][0]])]
            for index, (start, after) in enumerate(starts):
                end = starts[index + 1][0] if index + 1 < len(starts) else len(word)
                at = word.rfind("@", after, end)
                if at == -1:
                    pieces.append(word[start:end])
                else:
                    pieces.append(word[start:after] + MASK + word[at:end])
            word = "".join(pieces)
    if "t/" in word:
        word = _TOKEN_PATH.sub(_token_path, word)
    if "=" in word:
        word = _KEY_VALUE.sub(_key_value, word)
    return word


def _redact_piece(word: str) -> str:
    redacted = _redact_word(word)
    if "%" not in redacted:
        return redacted
    decoded = redacted
    for _ in range(3):  # double-encoded values are common in proxies' error pages
        step = unquote(decoded)
        if step == decoded:
            break
        decoded = step
    # decode what is left after the plain pass: if a secret hid behind the encoding, show it decoded, redacted
    words = _SEPARATORS.split(decoded)
    for index in range(0, len(words), 2):
        words[index] = _redact_word(words[index])
    again = "".join(words)
    return again if again != decoded else redacted


def redact_json(obj: Any) -> Any:
    """Every string (keys included) of a JSON-able value, redacted: for documents and state files."""
    if isinstance(obj, str):
        return redact(obj)
    if isinstance(obj, dict):
        return {redact(str(k)): redact_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [redact_json(x) for x in obj]
    return obj


def redact(text: str) -> str:
    """Every credential in ``text`` replaced by ``***``; anything else is left exactly as it was.

    ``http://user:pw@host`` -> ``http://***@host``; ``/t/abc123/`` -> ``/t/***/``;
    ``?token=abc`` -> ``?token=***``.
    """
    if not any(marker in text for marker in ("@", "t/", "=", "%", "earer", "EARER", "uthorization")):
        return text
    parts = _SEPARATORS.split(text)
    for index in range(0, len(parts), 2):  # even indices are words, odd ones separators
        if parts[index]:
            parts[index] = _redact_piece(parts[index])
    joined = "".join(parts)
    return _AUTH_SCHEME.sub(lambda m: f"{m[1]}{m[2]}{MASK}", joined)


class RedactingWriter(io.TextIOBase):
    """A text stream that redacts each line before it reaches ``target``.

    Whole lines are redacted at once (a URL is never cut in two); ``flush`` passes a pending partial
    line on (a prompt must show before its answer is read).
    """

    def __init__(self, target: IO[str] | Callable[[], IO[str]], rewrite: Callable[[str], str] | None = None) -> None:
        super().__init__()
        self._target = target
        self._pending = ""
        self._rewrite = rewrite

    @property
    def target(self) -> IO[str]:
        return self._target() if callable(self._target) else self._target

    def write(self, text: str) -> int:
        data = self._pending + text
        cut = data.rfind("\n") + 1
        self._pending = data[cut:]
        if cut:
            self.target.write(self._clean(data[:cut]))
        return len(text)

    def _clean(self, text: str) -> str:
        return redact(self._rewrite(text) if self._rewrite else text)

    def flush(self) -> None:
        if self._pending:
            pending, self._pending = self._pending, ""
            self.target.write(self._clean(pending))
        with contextlib.suppress(AttributeError, ValueError, OSError):
            self.target.flush()

    def isatty(self) -> bool:
        try:
            return bool(self.target.isatty())
        except (AttributeError, ValueError, OSError):
            return False

    def fileno(self) -> int:
        return self.target.fileno()

    def writable(self) -> bool:
        return True

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.target, "encoding", None) or "utf-8"
