"""The house rules of ``architecture.md``, kept by reading the source (``ast``; imports inside functions count).

Arrows point down only: front ends -> files -> backends/plan/diagnose -> change/detect -> runner ->
env/proxy -> knowledge/findings -> errors/progress/redact/schema. Each rule is checked on the real tree
and, once, on a small synthetic tree that breaks it, so a checker that stopped seeing violations fails.

``DEBT`` lists what main still breaks, each entry with the work that removes it; an entry that no
longer applies fails the test too, so the list only shrinks.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "condafix"
MAX_LINES = 550

# Higher rank = higher layer. A module may import its own room or a lower rank.
RANKS: Mapping[str, int] = {
    "errors": 0,
    "progress": 0,
    "progress_view": 0,
    "redact": 0,
    "schema": 0,
    "data": 0,
    "__init__": 0,
    "knowledge": 1,
    "findings": 1,
    "env": 2,
    "proxy": 2,
    "runner": 3,
    "change": 4,
    "detect": 4,
    "backends": 5,
    "plan": 5,
    "diagnose": 5,
    "files": 6,
    "cli": 7,
    "conda_plugin": 7,
    "__main__": 7,
}
FRONT_ENDS = ("cli", "conda_plugin", "__main__")
NO_BACKENDS = ("change", "plan", "env", "detect", "diagnose", "knowledge")
# Child processes whose stdout is a JSON answer to the parent (run with ``python -m``), not output for a user.
CHILD_PROCESSES = ("condafix.detect._native_probe", "condafix.detect._ptx_child")
CONDA_FRONT = ("condafix.conda_plugin", "condafix.cli.conda_cuda", "condafix.cli.conda_guard")

# Known breaks on main, each with the work that removes it (see issue 20). Keys: (rule, module, detail).
DEBT: Mapping[tuple[str, str, str], str] = {
    (
        "arrows-point-down",
        "condafix.change.apply",
        "condafix.backends.rattler.install",
    ): "installer inversion (issue 20 item 2): backends build an Installer, change/ wraps it",
    (
        "arrows-point-down",
        "condafix.change.apply",
        "condafix.backends.rattler.solve",
    ): "installer inversion (issue 20 item 2): backends build an Installer, change/ wraps it",
    (
        "arrows-point-down",
        "condafix.change.condafiles",
        "condafix.backends.rattler.grammar",
    ): "installer inversion (issue 20 item 2): backends build an Installer, change/ wraps it",
    (
        "arrows-point-down",
        "condafix.change.restore",
        "condafix.backends.rattler.install",
    ): "installer inversion (issue 20 item 2): backends build an Installer, change/ wraps it",
    (
        "arrows-point-down",
        "condafix.change.restore",
        "condafix.backends.rattler.solve",
    ): "installer inversion (issue 20 item 2): backends build an Installer, change/ wraps it",
    (
        "arrows-point-down",
        "condafix.plan.planner",
        "condafix.files.cudagroup",
    ): "one package-role table in knowledge/ (issue 20 item 3): the planner asks cudagroup's kinds",
    (
        "no-backends-below",
        "condafix.change.apply",
        "condafix.backends.rattler.install",
    ): "installer inversion (issue 20 item 2): backends build an Installer, change/ wraps it",
    (
        "no-backends-below",
        "condafix.change.apply",
        "condafix.backends.rattler.solve",
    ): "installer inversion (issue 20 item 2): backends build an Installer, change/ wraps it",
    (
        "no-backends-below",
        "condafix.change.condafiles",
        "condafix.backends.rattler.grammar",
    ): "installer inversion (issue 20 item 2): backends build an Installer, change/ wraps it",
    (
        "no-backends-below",
        "condafix.change.restore",
        "condafix.backends.rattler.install",
    ): "installer inversion (issue 20 item 2): backends build an Installer, change/ wraps it",
    (
        "no-backends-below",
        "condafix.change.restore",
        "condafix.backends.rattler.solve",
    ): "installer inversion (issue 20 item 2): backends build an Installer, change/ wraps it",
    (
        "no-backends-below",
        "condafix.plan.solver",
        "condafix.backends.conda",
    ): "installer inversion (issue 20 item 2): backends build an Installer, change/ wraps it",
    (
        "no-backends-below",
        "condafix.plan.solver",
        "condafix.backends.rattler.backend",
    ): "installer inversion (issue 20 item 2): backends build an Installer, change/ wraps it",
    (
        "no-import-cycle",
        "condafix.backends.conda",
        "condafix.backends.conda -> condafix.backends.rattler.backend -> condafix.backends.rattler.solve -> condafix.change.apply -> condafix.change.restore -> condafix.plan.solver",  # noqa: E501
    ): "installer inversion (issue 20 item 2): backends build an Installer, change/ wraps it",
    (
        "nothing-below-cli-prints",
        "condafix.backends.conda",
        "sys.stderr",
    ): "the relay/interrupt streams are to be lent by the command layer (issue 20 item 2)",
    (
        "nothing-below-cli-prints",
        "condafix.change.lock",
        "sys.stderr",
    ): "the relay/interrupt streams are to be lent by the command layer (issue 20 item 2)",
    (
        "nothing-below-cli-prints",
        "condafix.runner",
        "sys.stderr",
    ): "the relay/interrupt streams are to be lent by the command layer (issue 20 item 2)",
    (
        "nothing-below-cli-prints",
        "condafix.runner",
        "sys.stdout",
    ): "the relay/interrupt streams are to be lent by the command layer (issue 20 item 2)",
    (
        "one-reader-per-format",
        "condafix.backends.rattler.solve",
        "conda-meta records",
    ): "env/condameta.py, the one conda-meta/history/pinned reader (issue 20 item 3)",
    (
        "one-reader-per-format",
        "condafix.change.apply",
        "conda-meta records",
    ): "env/condameta.py, the one conda-meta/history/pinned reader (issue 20 item 3)",
    (
        "one-reader-per-format",
        "condafix.change.apply",
        "history",
    ): "env/condameta.py, the one conda-meta/history/pinned reader (issue 20 item 3)",
    (
        "one-reader-per-format",
        "condafix.change.condafiles",
        "conda-meta records",
    ): "env/condameta.py, the one conda-meta/history/pinned reader (issue 20 item 3)",
    (
        "one-reader-per-format",
        "condafix.change.condafiles",
        "history",
    ): "env/condameta.py, the one conda-meta/history/pinned reader (issue 20 item 3)",
    (
        "one-reader-per-format",
        "condafix.change.condafiles",
        "pinned",
    ): "env/condameta.py, the one conda-meta/history/pinned reader (issue 20 item 3)",
    (
        "one-reader-per-format",
        "condafix.change.restore",
        "conda-meta records",
    ): "env/condameta.py, the one conda-meta/history/pinned reader (issue 20 item 3)",
    (
        "one-reader-per-format",
        "condafix.change.safety",
        "conda-meta records",
    ): "env/condameta.py, the one conda-meta/history/pinned reader (issue 20 item 3)",
    (
        "one-reader-per-format",
        "condafix.change.snapshot",
        "conda-meta records",
    ): "env/condameta.py, the one conda-meta/history/pinned reader (issue 20 item 3)",
    (
        "one-reader-per-format",
        "condafix.change.snapshot",
        "history",
    ): "env/condameta.py, the one conda-meta/history/pinned reader (issue 20 item 3)",
    (
        "one-reader-per-format",
        "condafix.change.snapshot",
        "pinned",
    ): "env/condameta.py, the one conda-meta/history/pinned reader (issue 20 item 3)",
}
# Modules allowed over MAX_LINES, with why.
LONG: Mapping[str, str] = {
    "condafix.diagnose.verdict": "9 lines over; shrinks when verdict reports the one Finding shape",
    "condafix.files.envfile": "8 lines over; shrinks when env files solve through the Backend port",
}


@dataclass(frozen=True, kw_only=True)
class Import:
    module: str  # the importing module, dotted
    target: str  # what it imports, dotted (condafix.x.y, rattler, conda.base...)
    line: int
    in_function: bool


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def sources(root: Path) -> dict[str, str]:
    return {module_name(root, p): p.read_text(encoding="utf-8") for p in sorted(root.rglob("*.py"))}


def imports(name: str, text: str, known: Iterable[str]) -> Iterator[Import]:
    """Every import, top-level or inside a function; ``from condafix.x import y`` names y when y is a module."""
    modules = set(known)
    package = name if name in modules and any(m.startswith(name + ".") for m in modules) else name.rpartition(".")[0]

    def walk(node: ast.AST, in_function: bool) -> Iterator[Import]:
        for child in ast.iter_child_nodes(node):
            inner = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
            if isinstance(child, ast.Import):
                for alias in child.names:
                    yield Import(module=name, target=alias.name, line=child.lineno, in_function=in_function)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    anchor = package.split(".")
                    anchor = anchor[: len(anchor) - (child.level - 1)]
                    base = ".".join([*anchor, base] if base else anchor)
                for alias in child.names:
                    full = f"{base}.{alias.name}"
                    target = full if full in modules else base
                    yield Import(module=name, target=target, line=child.lineno, in_function=in_function)
            yield from walk(child, inner)

    yield from walk(ast.parse(text), False)


def room(module: str) -> str:
    """condafix.change.apply -> change; condafix.errors -> errors; condafix -> __init__."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def is_type_checking_only(text: str, line: int) -> bool:
    """Imports under ``if TYPE_CHECKING:`` are for the type checker, not the import graph."""
    tree = ast.parse(text)
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.If)
            and isinstance(node.test, ast.Name)
            and node.test.id == "TYPE_CHECKING"
            and any(getattr(n, "lineno", -1) == line for n in ast.walk(node))
        ):
            return True
    return False


def violations(tree: Mapping[str, str]) -> set[tuple[str, str, str]]:
    """(rule, module, detail) for every break of the house rules in a {module: source} tree."""
    found: set[tuple[str, str, str]] = set()
    graph: dict[str, set[str]] = {m: set() for m in tree}
    for name, text in tree.items():
        own = room(name)
        for imp in imports(name, text, tree):
            typing_only = is_type_checking_only(text, imp.line)
            top = imp.target.split(".")[0]
            if top == "rattler" and not name.startswith("condafix.backends.rattler"):
                found.add(("rattler-only-in-backends", name, imp.target))
            if top == "conda" and name != "condafix.backends.conda" and name not in CONDA_FRONT:
                found.add(("conda-only-in-conda-backend", name, imp.target))
            if top != "condafix" or imp.target not in tree:
                continue
            if not typing_only:
                graph[name].add(imp.target)
            target_room = room(imp.target)
            if target_room == "cli" and own not in FRONT_ENDS:
                found.add(("cli-only-from-front-ends", name, imp.target))
            if target_room == "backends" and own in NO_BACKENDS:
                found.add(("no-backends-below", name, imp.target))
            if not typing_only and target_room != own and RANKS.get(target_room, 99) > RANKS.get(own, -1):
                found.add(("arrows-point-down", name, imp.target))
        if room(name) not in FRONT_ENDS and name not in CHILD_PROCESSES:
            for node in ast.walk(ast.parse(text)):
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print":
                    found.add(("nothing-below-cli-prints", name, "print()"))
                if (
                    isinstance(node, ast.Attribute)
                    and node.attr in ("stdout", "stderr")
                    and isinstance(node.value, ast.Name)
                    and node.value.id == "sys"
                ):
                    found.add(("nothing-below-cli-prints", name, f"sys.{node.attr}"))
        if len(text.splitlines()) > MAX_LINES:
            found.add(("module-size", name, f"over {MAX_LINES} lines"))
    for cycle in cycles(graph):
        found.add(("no-import-cycle", cycle[0], " -> ".join(cycle)))
    return found


def cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


# ---------------------------------------------------------------- one reader per format

# A second function that opens one of these, or parses a build string, fails: (pattern, the one reader).
READERS: Mapping[str, tuple[re.Pattern[str], tuple[str, ...]]] = {
    "condarc": (re.compile(r"""["'](?:[^"'\s]*/)?\.?condarc(?:\.d)?/?["']"""), ("condafix.env.condarc",)),
    "conda-meta records": (
        re.compile(r"""["']conda-meta["']\)?\s*\)?\.(?:glob|iterdir)\(\s*["']\*\.json"""),
        ("condafix.env.condameta",),
    ),
    "history": (re.compile(r"""["']conda-meta["']\s*\)?\s*/\s*["']history["']"""), ("condafix.env.condameta",)),
    "pinned": (re.compile(r"""["']conda-meta["']\s*\)?\s*/\s*["']pinned["']"""), ("condafix.env.condameta",)),
    "build string": (re.compile(r"""(?:cuda_\?|cu\)|(?<![\w])cuda)\(\\d"""), ("condafix.knowledge.roles",)),
}


def reader_violations(tree: Mapping[str, str]) -> set[tuple[str, str, str]]:
    found = set()
    for fmt, (pattern, owners) in READERS.items():
        for name, text in tree.items():
            if name in owners:
                continue
            for line in text.splitlines():
                if not line.strip().startswith("#") and pattern.search(line):
                    found.add(("one-reader-per-format", name, fmt))
    return found


# ---------------------------------------------------------------- the tests


def real_tree() -> dict[str, str]:
    return sources(PACKAGE)


def test_the_tree_keeps_the_house_rules() -> None:
    found = violations(real_tree()) | reader_violations(real_tree())
    found = {v for v in found if not (v[0] == "module-size" and v[1] in LONG)}
    new = sorted(found - set(DEBT))
    assert not new, "house rules broken (architecture.md):\n" + "\n".join(" | ".join(v) for v in new)


def test_the_debt_list_only_shrinks() -> None:
    found = violations(real_tree()) | reader_violations(real_tree())
    paid = sorted(set(DEBT) - found)
    assert not paid, "no longer true, remove from DEBT:\n" + "\n".join(" | ".join(v) for v in paid)


def test_the_long_module_list_only_shrinks() -> None:
    tree = real_tree()
    short = [name for name in LONG if len(tree.get(name, "").splitlines()) <= MAX_LINES]
    assert not short, f"under {MAX_LINES} lines now, remove from LONG: {short}"


def test_every_room_of_the_layout_exists() -> None:
    rooms = {room(name) for name in real_tree()}
    missing = {"knowledge", "detect", "env", "diagnose", "plan", "backends", "change", "files", "cli"} - rooms
    assert not missing


# A synthetic tree that breaks each rule once: the checker must see every break.
BROKEN = {
    "condafix": "",
    "condafix.errors": "",
    "condafix.env": "",
    "condafix.env.condarc": "",
    "condafix.env.envinfo": "def f():\n    from condafix.plan import planner\n",  # upward, inside a function
    "condafix.plan": "",
    "condafix.plan.planner": "from condafix.backends import conda\nimport condafix.env.envinfo\n",
    "condafix.backends": "",
    "condafix.backends.conda": "import conda.base\n",
    "condafix.change": "",
    "condafix.change.apply": "import rattler\nprint('hi')\nfrom condafix.cli import render\n",
    "condafix.diagnose": "",
    "condafix.diagnose.verdict": "import sys\nsys.stderr.write('x')\nimport conda\n" + "x = 1\n" * 600,
    "condafix.cli": "",
    "condafix.cli.render": "from condafix.env import envinfo\n",
    "condafix.files": "",
    "condafix.files.envfile": "if TYPE_CHECKING:\n    from condafix.cli import render\n",
}


def test_the_checker_sees_every_kind_of_break() -> None:
    found = violations(BROKEN)
    expected = {
        ("arrows-point-down", "condafix.env.envinfo", "condafix.plan.planner"),
        ("no-backends-below", "condafix.plan.planner", "condafix.backends.conda"),
        ("rattler-only-in-backends", "condafix.change.apply", "rattler"),
        ("conda-only-in-conda-backend", "condafix.diagnose.verdict", "conda"),
        ("cli-only-from-front-ends", "condafix.change.apply", "condafix.cli.render"),
        ("cli-only-from-front-ends", "condafix.files.envfile", "condafix.cli.render"),  # even for typing
        ("arrows-point-down", "condafix.change.apply", "condafix.cli.render"),
        ("nothing-below-cli-prints", "condafix.change.apply", "print()"),
        ("nothing-below-cli-prints", "condafix.diagnose.verdict", "sys.stderr"),
        ("module-size", "condafix.diagnose.verdict", "over 550 lines"),
        (
            "no-import-cycle",
            "condafix.env.envinfo",
            "condafix.env.envinfo -> condafix.plan.planner",
        ),
    }
    assert expected <= found, sorted(expected - found)
    # the conda backend may import conda; a TYPE_CHECKING import draws no arrow
    assert not any(v[1] == "condafix.backends.conda" for v in found)
    assert ("arrows-point-down", "condafix.files.envfile", "condafix.cli.render") not in found


def test_the_reader_check_sees_a_second_reader() -> None:
    tree = {
        "condafix.env.condameta": "p = prefix / 'conda-meta' / 'history'\n",
        "condafix.change.apply": "text = (prefix / 'conda-meta' / 'history').read_text()\n",
        "condafix.proxy": "paths = [home / '.condarc']\n",
        "condafix.diagnose.paste": "m = re.search(r'cuda(\\d+)', build)\n",
        "condafix.change.snapshot": "for p in (prefix / 'conda-meta').glob('*.json'):\n    pass\n",
    }
    found = {(rule, name) for rule, name, _d in reader_violations(tree)}
    assert found == {
        ("one-reader-per-format", "condafix.change.apply"),
        ("one-reader-per-format", "condafix.proxy"),
        ("one-reader-per-format", "condafix.diagnose.paste"),
        ("one-reader-per-format", "condafix.change.snapshot"),
    }


@pytest.mark.parametrize("name", sorted(real_tree()))
def test_every_module_parses_and_names_its_room(name: str) -> None:
    assert room(name) in RANKS, f"{name}: a room architecture.md does not name"
