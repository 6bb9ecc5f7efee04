"""The import graph of blend's packages, read from the source with ``ast``: cycles and floors.

Every ``import`` counts for cycles, wherever it stands: at module level, inside a function
(a lazy import), or under ``if TYPE_CHECKING:``, because a lazy import is still a dependency
and a cycle through one is still a cycle. A module's *floor* counts what it needs at run
time (annotations excluded): 1 if it imports nothing of its own package, else one more than
the highest floor it imports. The floors are what
``docs/architecture.md`` shows; ``tests/test_import_graph.py`` fails on any cycle.

    python scripts/import_floors.py              # floors of blend_core and both plugins
    python scripts/import_floors.py blend_core   # one package
    python scripts/import_floors.py --markdown   # blend_core's table in docs/architecture.md
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: each package's name and the folder that holds it
PACKAGES = {
    "blend_core": ROOT / "blend_core",
    "blend_nwb": ROOT / "plugins" / "blend-nwb" / "src" / "blend_nwb",
    "blend_spatial": ROOT / "plugins" / "blend-spatial" / "src" / "blend_spatial",
}


#: modules that import by name from a table (``importlib.import_module``) and list the same
#: imports under ``if TYPE_CHECKING:``: there those imports are what the module needs at run time
BY_NAME = {"blend_core.api"}


def modules(package: str, folder: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` file of the package (``__init__`` is the package)."""
    out = {}
    for path in sorted(folder.rglob("*.py")):
        parts = [package, *path.relative_to(folder).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _resolve(name: str, known: dict[str, Path]) -> str | None:
    """The longest known module that ``name`` is or lies inside (``a.b.C`` -> ``a.b``)."""
    while name:
        if name in known:
            return name
        name = name.rpartition(".")[0]
    return None


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _import_nodes(tree: ast.AST, typing_only: bool = False):
    """Every import statement, with whether it stands under ``if TYPE_CHECKING:``."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node, typing_only
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.body:
                yield from _import_nodes(ast.Module(body=[child], type_ignores=[]), True)
            for child in node.orelse:
                yield from _import_nodes(ast.Module(body=[child], type_ignores=[]), typing_only)
        else:
            yield from _import_nodes(node, typing_only)


def imports(module: str, path: Path, known: dict[str, Path], typing: bool = True) -> set[str]:
    """The package's modules that ``module`` imports anywhere in its file (itself excluded);
    with ``typing=False``, only those it imports at run time (not under ``if TYPE_CHECKING:``)."""
    tree = ast.parse(path.read_text(), str(path))
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node, typing_only in _import_nodes(tree):
        if typing_only and not typing:
            continue
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            if node.level:  # relative: from the module's package, one level up per extra dot
                base = module.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            # `from pkg import sub` imports the submodule when there is one, else a name of pkg
            names = [f"{prefix}.{alias.name}" for alias in node.names]
        for name in names:
            target = _resolve(name, known)
            if target is not None and target != module:
                found.add(target)
    return found


def graph(package: str, folder: Path, typing: bool = True) -> dict[str, set[str]]:
    """Module -> the package's modules it imports (``typing=False``: at run time only)."""
    known = modules(package, folder)
    return {m: imports(m, p, known, typing or m in BY_NAME) for m, p in known.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def floors(edges: dict[str, set[str]]) -> dict[str, int]:
    """Each module's floor; raises ValueError on a cycle (a cycle has no floors)."""
    found = cycles(edges)
    if found:
        raise ValueError(f"import cycle: {' <-> '.join(found[0])}")
    memo: dict[str, int] = {}

    def floor(m: str) -> int:
        if m not in memo:
            memo[m] = 1 + max((floor(d) for d in edges[m]), default=0)
        return memo[m]

    return {m: floor(m) for m in edges}


def markdown(package: str = "blend_core") -> str:
    """The floor table of ``package`` as docs/architecture.md shows it (top floor first)."""
    by_floor: dict[int, list[str]] = {}
    for m, f in floors(graph(package, PACKAGES[package], typing=False)).items():
        by_floor.setdefault(f, []).append(m.removeprefix(f"{package}.") if m != package else f"{package}/__init__")
    rows = ["| floor | modules |", "|---|---|"]
    rows += [f"| {f} | {', '.join(f'`{m}`' for m in sorted(by_floor[f]))} |" for f in sorted(by_floor, reverse=True)]
    return "\n".join(rows) + "\n"


def main(argv: list[str]) -> int:
    if argv == ["--markdown"]:
        print(markdown(), end="")
        return 0
    for package in argv or list(PACKAGES):
        edges = graph(package, PACKAGES[package])
        found = cycles(edges)
        if found:
            for comp in found:
                print(f"{package}: cycle: {', '.join(comp)}")
            continue
        by_floor: dict[int, list[str]] = {}
        for m, f in floors(graph(package, PACKAGES[package], typing=False)).items():
            by_floor.setdefault(f, []).append(m)
        print(f"{package} (floor: modules; each imports only from floors below it)")
        for f in sorted(by_floor, reverse=True):
            print(f"  {f:2d}: {', '.join(sorted(by_floor[f]))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
