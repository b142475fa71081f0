"""The layout rules the code keeps: rooms small enough to read, no import cycle.

Modules of the packages stay under 700 lines, classes under 400, functions
under 100; no module imports (even under ``TYPE_CHECKING``) one that imports
it back, directly or through others.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("gridshare", "optimizer", "ocpp_adapter", "oscp", "forecasts")
MAX_MODULE, MAX_CLASS, MAX_FUNCTION = 700, 400, 100


def modules() -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = path
    return out


def oversized() -> list[str]:
    found = []
    for name, path in modules().items():
        text = path.read_text()
        lines = text.count("\n")
        if lines > MAX_MODULE:
            found.append(f"module {name}: {lines} lines")
        for node in ast.walk(ast.parse(text)):
            if not isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            size = (node.end_lineno or node.lineno) - node.lineno + 1
            if isinstance(node, ast.ClassDef) and size > MAX_CLASS:
                found.append(f"class {name}.{node.name}: {size} lines")
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and size > MAX_FUNCTION:
                found.append(f"function {name}.{node.name}: {size} lines")
    return found


def imports() -> dict[str, set[str]]:
    """Module → first-party modules it imports (anywhere in it)."""
    known = modules()
    graph: dict[str, set[str]] = {}
    for name, path in known.items():
        deps: set[str] = set()
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")
                    up = up[: len(up) - node.level + 1]
                    base = ".".join([*up, base] if base else up)
                targets = [base] + [f"{base}.{a.name}" for a in node.names]
            for t in targets:
                while t and t not in known:
                    t = t.rpartition(".")[0]
                if t and t != name and not name.startswith(t + "."):
                    deps.add(t)
        graph[name] = deps
    return graph


def cycles() -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    graph = imports()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_the_application_has_one_error_root():
    import importlib
    import inspect

    from gridshare.errors import GridshareError

    strays = []
    for name in modules():
        if not name.startswith("gridshare"):
            continue
        module = importlib.import_module(name)
        for cls_name, cls in inspect.getmembers(module, inspect.isclass):
            mine = cls.__module__ == name and not cls_name.startswith("_")
            if mine and issubclass(cls, Exception) and not issubclass(cls, GridshareError):
                strays.append(f"{name}.{cls_name}")
    assert strays == []


def test_the_readme_has_one_line_per_room():
    readme = (ROOT / "README.md").read_text()
    rooms = sorted(
        str(init.parent.relative_to(ROOT)) + "/"
        for pkg in PACKAGES
        for init in (ROOT / pkg).rglob("__init__.py")
        if init.parent.name != "routes"  # the API's routes are one line of `gridshare/api/`
    )
    missing = [r for r in rooms if f"| `{r}` |" not in readme]
    assert missing == []


def test_no_room_is_too_big_to_read():
    assert oversized() == []


def test_no_import_cycle():
    assert cycles() == []


if __name__ == "__main__":
    print("\n".join(oversized()))
    for c in cycles():
        print("cycle:", " ↔ ".join(c))
