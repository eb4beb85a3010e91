"""What a package's name, version and build say about CUDA: the one build-string parser.

Why one: three parsers once disagreed, and the one in the paste reader read the pytorch build
``py3.10_cuda11.3_cudnn8.3.2_0`` as CUDA 1.1 (a packed ``cu113`` form matched before the dotted one).
The dotted form (``cuda11.3``, ``cuda_11.8``) is tried where it stands; packed digits (``cuda129``,
``cuda112py39h...``, torchvision's ``py38_cu102``) read as major + last digit; a pip local version
(``2.5.1+cu121``) likewise.
"""

from __future__ import annotations

import re

# one pass, no nested repeats (linear on any input): cuda[_]M.m | cuda[_]Mm | _cuMm_
_BUILD = re.compile(r"cuda_?(\d+)(?:\.(\d+))?|(?:^|[_.])cu(\d{2,3})(?=[_.]|$)")
_LOCAL = re.compile(r"\+cu(\d{2,3})\b")


def _packed(digits: str) -> str | None:
    """``129`` -> 12.9, ``102`` -> 10.2; one digit is no CUDA version."""
    if len(digits) < 2:
        return None
    return f"{int(digits[:-1])}.{digits[-1]}"


def cuda_of_build(build: str) -> str | None:
    """CUDA of a build string: ``cuda129_generic_py312_h1_300``, ``py3.10_cuda11.3_cudnn8.3.2_0``, ``py38_cu102``."""
    match = _BUILD.search(build)
    if not match:
        return None
    if match.group(1) is not None:
        if match.group(2) is not None:
            return f"{int(match.group(1))}.{int(match.group(2))}"
        return _packed(match.group(1))
    return _packed(match.group(3))


def cuda_of_local_version(version: str) -> str | None:
    """CUDA of a pip local version: ``2.5.1+cu121`` -> 12.1."""
    match = _LOCAL.search(version)
    return _packed(match.group(1)) if match else None
