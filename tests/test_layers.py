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
# files/ solves through the Backend port the command layer opens and hands it (issue 20 item 4); of backends/
# it may read conda's grammars only (match specs, version specs, pixi.lock), never a solver, gateway or installer.
FILES_MAY_IMPORT = ("condafix.backends.rattler.grammar",)
# Child processes whose stdout is a JSON answer to the parent (run with ``python -m``), not output for a user.
CHILD_PROCESSES = ("condafix.detect._native_probe", "condafix.detect._ptx_child", "condafix.detect._finder_child")
CONDA_FRONT = ("condafix.conda_plugin", "condafix.cli.conda_cuda", "condafix.cli.conda_guard")

# Known breaks on main, each with the work that removes it (see issue 20). Keys: (rule, module, detail).
DEBT: Mapping[tuple[str, str, str], str] = {}
# Dataclasses that are state, not results (never in a --json document), with why they must change.
MUTABLE: Mapping[str, str] = {
    "condafix.errors.CondafixError": "an exception: Python sets __traceback__ and __cause__ on it",
    "condafix.progress._Phase": "the live progress model a reporter updates as bytes arrive",
    "condafix.progress._Stalled": "the live progress model a reporter updates as bytes arrive",
    "condafix.progress._State": "the live progress model a reporter updates as bytes arrive",
    "condafix.proxy.Policy": "what the CLI asked for, with the proxy diagnosis cached on first use",
}
# Modules allowed over MAX_LINES, with why.
LONG: Mapping[str, str] = {}


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
            if target_room == "backends" and own == "files" and imp.target not in FILES_MAY_IMPORT:
                found.add(("files-solve-through-the-port", name, imp.target))
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
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ClassDef) and f"{name}.{node.name}" not in MUTABLE and not _frozen_kw_only(node):
                found.add(("results-frozen-and-keyword-only", name, node.name))
        if len(text.splitlines()) > MAX_LINES:
            found.add(("module-size", name, f"over {MAX_LINES} lines"))
    for cycle in cycles(graph):
        found.add(("no-import-cycle", cycle[0], " -> ".join(cycle)))
    return found


def _frozen_kw_only(node: ast.ClassDef) -> bool:
    """A class that is no dataclass passes; a dataclass must say ``frozen=True, kw_only=True``."""
    for deco in node.decorator_list:
        call = deco if isinstance(deco, ast.Call) else None
        func = call.func if call else deco
        if not (isinstance(func, ast.Name) and func.id == "dataclass"):
            continue
        given = {k.arg: getattr(k.value, "value", None) for k in (call.keywords if call else [])}
        return given.get("frozen") is True and given.get("kw_only") is True
    return True


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
    # nvidia-smi's banner, ``-q`` text and XML fields: live detection and pasted reports read them alike
    "nvidia-smi fields": (
        re.compile(r"""Driver\|KMD|Driver Version\|CUDA Version|Driver Version \{0,\d+\}: |<driver_version>"""),
        ("condafix.detect.driver",),
    ),
}


CONDAMETA = "condafix.env.condameta"
_META_FILES = {"history": "history", "pinned": "pinned"}
_META_PATH = re.compile(r"^(?:[^\s]*/)?conda-meta/(history|pinned)$")


def _is_meta(node: ast.AST, names: set[str]) -> bool:
    """An expression that is the conda-meta directory: ``"conda-meta"``, ``x / "conda-meta"``, a name bound
    to one in the same function, ``os.path.join(..., "conda-meta")``, or ``condameta.meta_dir(...)``."""
    if isinstance(node, ast.Constant):
        return node.value == "conda-meta"
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
        return _is_meta(node.right, names)
    if isinstance(node, ast.Name):
        return node.id in names
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        if node.func.attr == "meta_dir":
            return True
        if node.func.attr == "join" and node.args:
            return _is_meta(node.args[-1], names)
    return False


def _meta_reads(scope: ast.AST) -> Iterator[str]:
    """Formats a function (or a module's top level) reads from conda-meta itself: ``meta / "history"``,
    ``os.path.join(prefix, "conda-meta", "pinned")``, ``meta.glob("*.json")``, ``os.listdir(meta)``."""
    names: set[str] = set()
    for _round in range(3):  # names bound to names bound to conda-meta
        for node in ast.walk(scope):
            if isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None:
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                if _is_meta(node.value, names):
                    names |= {t.id for t in targets if isinstance(t, ast.Name)}
    for node in ast.walk(scope):
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div) and _is_meta(node.left, names):
            yield from _file_named(node.right)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and _META_PATH.match(node.value):
            yield _META_PATH.match(node.value).group(1)  # type: ignore[union-attr]
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        attr, args = node.func.attr, node.args
        if attr in ("glob", "rglob") and _is_meta(node.func.value, names) and _lists_records(args):
            yield "conda-meta records"
        if (attr == "iterdir" and _is_meta(node.func.value, names)) or (
            attr in ("listdir", "scandir") and args and _is_meta(args[0], names)
        ):
            yield "conda-meta records"
        if attr == "join" and len(args) >= 2 and _is_meta(args[-2], names):
            yield from _file_named(args[-1])


def _file_named(node: ast.AST) -> Iterator[str]:
    if isinstance(node, ast.Constant) and node.value in _META_FILES:
        yield _META_FILES[node.value]


def _lists_records(args: list[ast.expr]) -> bool:
    """``glob("*.json")`` or ``glob("*")`` lists records; ``glob("prefix_record_*")`` (installer leftovers) does not."""
    return bool(args) and isinstance(args[0], ast.Constant) and str(args[0].value) in ("*", "*.json")


def reader_violations(tree: Mapping[str, str]) -> set[tuple[str, str, str]]:
    found = set()
    for fmt, (pattern, owners) in READERS.items():
        for name, text in tree.items():
            if name in owners:
                continue
            for line in text.splitlines():
                if not line.strip().startswith("#") and pattern.search(line):
                    found.add(("one-reader-per-format", name, fmt))
    for name, text in tree.items():
        if name == CONDAMETA:
            continue
        module = ast.parse(text)
        top = ast.Module(
            body=[n for n in module.body if not isinstance(n, ast.FunctionDef | ast.ClassDef)], type_ignores=[]
        )
        scopes = [top, *(n for n in ast.walk(module) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef))]
        for scope in scopes:
            found |= {("one-reader-per-format", name, fmt) for fmt in _meta_reads(scope)}
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
    "condafix.diagnose.verdict": "import sys\nsys.stderr.write('x')\nimport conda\n"
    + "x = 1\n" * 600
    + "@dataclass(frozen=True)\nclass Report:\n    x: int\n"
    + "@dataclass(frozen=True, kw_only=True)\nclass Fine:\n    y: int\n",
    "condafix.cli": "",
    "condafix.cli.render": "from condafix.env import envinfo\n",
    "condafix.files": "",
    "condafix.files.envfile": "if TYPE_CHECKING:\n    from condafix.cli import render\n",
    "condafix.files.pixifile": "from condafix.backends.rattler import solve\nfrom condafix.backends.rattler import grammar\n",  # noqa: E501
    "condafix.backends.rattler": "",
    "condafix.backends.rattler.solve": "",
    "condafix.backends.rattler.grammar": "",
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
        ("files-solve-through-the-port", "condafix.files.pixifile", "condafix.backends.rattler.solve"),
        ("results-frozen-and-keyword-only", "condafix.diagnose.verdict", "Report"),
        (
            "no-import-cycle",
            "condafix.env.envinfo",
            "condafix.env.envinfo -> condafix.plan.planner",
        ),
    }
    assert expected <= found, sorted(expected - found)
    assert ("results-frozen-and-keyword-only", "condafix.diagnose.verdict", "Fine") not in found
    # the conda backend may import conda; a TYPE_CHECKING import draws no arrow
    assert not any(v[1] == "condafix.backends.conda" for v in found)
    assert ("arrows-point-down", "condafix.files.envfile", "condafix.cli.render") not in found
    # the grammar is not a solver: files/ may read specs with it
    assert not any(v[0] == "files-solve-through-the-port" and v[2].endswith(".grammar") for v in found)


def test_the_reader_check_sees_a_second_reader() -> None:
    tree = {
        "condafix.env.condameta": "p = prefix / 'conda-meta' / 'history'\n",
        "condafix.change.apply": "text = (prefix / 'conda-meta' / 'history').read_text()\n",
        "condafix.proxy": "paths = [home / '.condarc']\n",
        "condafix.diagnose.paste": "m = re.search(r'cuda(\\d+)', build)\n",
        "condafix.change.snapshot": "for p in (prefix / 'conda-meta').glob('*.json'):\n    pass\n",
        "condafix.diagnose.facts": '_Q = re.compile(r"^ {0,8}Driver Version {0,80}: (\\d{2,4})")\n',
        "condafix.diagnose.explain": 'X = re.compile(r"<driver_version>([^<]+)</driver_version>")\n',
    }
    found = {(rule, name) for rule, name, _d in reader_violations(tree)}
    assert found == {
        ("one-reader-per-format", "condafix.diagnose.facts"),
        ("one-reader-per-format", "condafix.diagnose.explain"),
        ("one-reader-per-format", "condafix.change.apply"),
        ("one-reader-per-format", "condafix.proxy"),
        ("one-reader-per-format", "condafix.diagnose.paste"),
        ("one-reader-per-format", "condafix.change.snapshot"),
    }


def test_the_reader_check_sees_conda_meta_read_a_second_way() -> None:
    """The one conda-meta reader is env/condameta.py: a path built in steps, joined with os.path, or
    listed, elsewhere, is a second reader; the owner itself and a snapshot's own ``pinned`` copy are not."""
    tree = {
        CONDAMETA: "def f(prefix):\n    meta = prefix / 'conda-meta'\n    return (meta / 'history').read_text()\n",
        "condafix.change.apply": "def f(prefix):\n    meta = prefix / 'conda-meta'\n"
        "    d = meta\n    return d / 'history'\n"
        "def g(prefix):\n    return (prefix / 'conda-meta').glob('prefix_record_*')\n",
        "condafix.change.restore": "import os\ndef f(p):\n    return open(os.path.join(p, 'conda-meta', 'pinned'))\n",
        "condafix.diagnose.verdict": "import os\ndef f(p):\n    return os.listdir(os.path.join(p, 'conda-meta'))\n",
        "condafix.cli.commands": "def f(prefix):\n"
        "    return [p.read_text() for p in (prefix / 'conda-meta').iterdir()]\n",
        "condafix.env.envinfo": "def f(prefix):\n    return (condameta.meta_dir(prefix) / 'pinned').read_text()\n",
        "condafix.files.envfile": "PINNED = 'conda-meta/pinned'\n",
        "condafix.change.snapshot": "def f(root):\n"
        "    (root / 'conda-meta').mkdir()\n    copy(pinned, root / 'pinned')\n",
    }
    found = reader_violations(tree)
    assert found == {
        ("one-reader-per-format", "condafix.change.apply", "history"),
        ("one-reader-per-format", "condafix.change.restore", "pinned"),
        ("one-reader-per-format", "condafix.diagnose.verdict", "conda-meta records"),
        ("one-reader-per-format", "condafix.cli.commands", "conda-meta records"),
        ("one-reader-per-format", "condafix.env.envinfo", "pinned"),
        ("one-reader-per-format", "condafix.files.envfile", "pinned"),
    }


@pytest.mark.parametrize("name", sorted(real_tree()))
def test_every_module_parses_and_names_its_room(name: str) -> None:
    assert room(name) in RANKS, f"{name}: a room architecture.md does not name"
