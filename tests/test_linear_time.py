"""Linear time on any input (issue 13 item 7): no pattern nests unbounded quantifiers, and 1 MB inputs return.

No timing assertions: a catastrophic pattern makes these tests hang visibly instead of passing. The
structural check below is what keeps new patterns honest.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
import sys
from typing import Any

import pytest

import condafix
from condafix.detect import driver
from condafix.diagnose import facts as reader
from condafix.diagnose.explain import FAMILIES, explain

if sys.version_info >= (3, 11):
    from re import _compiler as sre_compile  # type: ignore[attr-defined]
    from re import _constants as sre_constants  # type: ignore[attr-defined]
    from re import _parser as sre_parse  # type: ignore[attr-defined]
else:  # pragma: no cover
    import sre_compile
    import sre_constants
    import sre_parse

MB = 1 << 20
_REPEATS = {sre_constants.MAX_REPEAT, sre_constants.MIN_REPEAT}


def nested_unbounded(pattern: re.Pattern[str]) -> list[str]:
    """Repeats (max > 1) inside an unbounded repeat: the shape behind catastrophic backtracking.

    Allowed when each iteration of the outer repeat starts with a literal that the inner repeat cannot
    consume (``(?:\\.\\d+)*``): then there is one way to split the input, and matching stays linear.
    """
    parsed = sre_parse.parse(pattern.pattern, pattern.flags)
    found: list[str] = []

    def inner_repeats(items: Any) -> list[Any]:
        out = []
        for op, av in items:
            if op in _REPEATS:
                if av[1] > 1:
                    out.append((op, av))
                out += inner_repeats(av[2])
            elif op == sre_constants.SUBPATTERN:
                out += inner_repeats(av[-1])
            elif op == sre_constants.BRANCH:
                for branch in av[1]:
                    out += inner_repeats(branch)
        return out

    def separated(body: Any, inner: Any) -> bool:
        first = list(body)[:1]
        if not first or first[0][0] != sre_constants.LITERAL:
            return False
        lead = chr(first[0][1])
        single = sre_compile.compile(sre_parse.SubPattern(parsed.state, [inner]), pattern.flags)
        return single.match(lead) is None

    def walk(items: Any) -> None:
        for op, av in items:
            if op in _REPEATS:
                _low, high, sub = av
                if high == sre_constants.MAXREPEAT:
                    for inner in inner_repeats(sub):
                        if not separated(sub, inner):
                            found.append(f"{pattern.pattern!r}: a repeat inside an unbounded repeat")
                walk(sub)
            elif op == sre_constants.SUBPATTERN:
                walk(av[-1])
            elif op == sre_constants.BRANCH:
                for branch in av[1]:
                    walk(branch)
            elif op in (sre_constants.ASSERT, sre_constants.ASSERT_NOT):
                walk(av[1])

    walk(parsed)
    return found


def module_patterns() -> list[tuple[str, re.Pattern[str]]]:
    found: list[tuple[str, re.Pattern[str]]] = [(f"explain.{f.code}", f.pattern) for f in FAMILIES]
    for info in pkgutil.walk_packages(condafix.__path__, "condafix."):
        if info.name.rsplit(".", 1)[-1].startswith("__"):
            continue
        try:
            module = importlib.import_module(info.name)
        except ImportError:  # an optional backend (conda) that this environment lacks
            continue
        for name, value in vars(module).items():
            if isinstance(value, re.Pattern) and isinstance(value.pattern, str):
                found.append((f"{info.name.removeprefix('condafix.')}.{name}", value))
    return found


def test_the_checker_catches_nested_quantifiers() -> None:
    assert nested_unbounded(re.compile(r"(a+)+b"))
    assert nested_unbounded(re.compile(r"(?:\s*\w+)*$"))
    assert not nested_unbounded(re.compile(r"(?:\.\d{1,3}){0,2}"))
    assert not nested_unbounded(re.compile(r"[^\n]{0,200}x"))
    assert not nested_unbounded(re.compile(r"(?:\.\d+)*$"))  # each iteration starts with a dot
    assert nested_unbounded(re.compile(r"(?:\d\d+)*$"))


@pytest.mark.parametrize(("name", "pattern"), module_patterns(), ids=lambda v: v if isinstance(v, str) else "")
def test_no_pattern_nests_unbounded_quantifiers(name: str, pattern: re.Pattern[str]) -> None:
    assert nested_unbounded(pattern) == [], name


@pytest.mark.parametrize(
    ("text", "family"),
    [
        ("__cuda " * (MB // 7), None),  # the 1 MB line that took over 60 s
        ("__cuda >=12 " * (MB // 12) + " but missing", None),  # one line: cut at reader.MAX_LINE, so no family
        ("__cuda >=12 __cuda but missing\n" * (MB // 31), "solver_cuda"),
        ("Unsupported .version 8.4; current version is '8.2'\n" * (MB // 52), "ptx_version"),
        ("<gpu>" * (MB // 5), None),
        ("ProxyError " + "x" * MB, "proxy"),
        ("| " + " " * MB + "Driver Version: 535.104.05", None),
        ("cudatoolkit" + " " * MB + "11.8.0 h4ba93d1_13", None),
        ("sm_86 " * (MB // 6) + "with CUDA capability sm_86 is not compatible", None),
        ("site-packages/torch/" * (MB // 20), None),
        ("feature:" + "/linux-64" * (MB // 9), None),
    ],
    ids=lambda v: v[:24] if isinstance(v, str) else str(v),
)
def test_explain_returns_on_1_mb_inputs(text: str, family: str | None) -> None:
    assert len(text) >= MB - 32 * 1024
    assert explain(text).family == family


def test_paste_is_bounded() -> None:
    text = "a" * (3 * MB) + "\nUnsupported .version 8.4; current version is '8.2'"
    bounded = reader.bound(text)
    assert len(bounded) <= reader.MAX_INPUT + 1
    assert explain(text).ptx == "8.4"  # the tail is kept: errors come last


@pytest.mark.parametrize(
    "text",
    [
        "<gpu>" * (100 * 1024 // 5),  # 100 KB of open tags took doctor 29 s
        "<gpu><product_name>" * (MB // 18),
        "|   0  NVIDIA A100" + " " * MB + "On |",
        "Driver Version: 1" * (MB // 17),
        " Product Name : " * (MB // 16),
    ],
    ids=lambda v: v[:20],
)
def test_nvidia_smi_parsers_return_on_large_inputs(text: str) -> None:
    assert driver.parse_smi_xml(text).cuda is None
    assert driver.parse_smi_banner(text).cuda is None
    assert driver.parse_smi_query_text(text).cuda is None
    assert driver.smi_failure(text) is None
    assert driver.parse_smi_query_gpu(text) == ()
