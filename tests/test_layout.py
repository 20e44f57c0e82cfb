"""The package's architecture, as its map states it: the import graph of minansor/ and yolo/ is
acyclic, a minansor module imports only modules above it in the map at the top of
minansor/__init__.py, and the library never imports the application (yolo/) or experiments/."""

import ast
import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def module_files(package: str) -> dict[str, str]:
    """Dotted module name -> path, for every module of `package` (a package is its __init__)."""
    out = {}
    for folder, _, files in os.walk(os.path.join(ROOT, package)):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                dotted = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
                out[dotted.removesuffix(".__init__")] = path
    return out


def imports(dotted: str, path: str) -> set[str]:
    """Every module `dotted` imports, at any depth of its code (a function-level import counts)."""
    package = dotted if path.endswith("__init__.py") else dotted.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(open(path).read())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def graph(package: str) -> dict[str, set[str]]:
    """Module -> the modules of the same package it imports (a package itself only when it is
    what was imported, not the parent of an imported module)."""
    modules = module_files(package)
    out = {}
    for dotted, path in modules.items():
        found = imports(dotted, path)
        targets = {m for m in found if m in modules and m != dotted}
        # `from . import x` names both the package and x; the module is the dependency
        out[dotted] = {m for m in targets if not any(other.startswith(m + ".") for other in targets)}
    return out


def cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (found := visit(node)):
            return found
    return None


def map_order() -> list[str]:
    """The modules of the map at the top of minansor/__init__.py, in its order."""
    docstring = ast.get_docstring(ast.parse(open(os.path.join(ROOT, "minansor", "__init__.py")).read()))
    order, folder = [], ""
    for line in docstring.split("Map of the code", 1)[1].splitlines():
        words = re.match(r"(\s+)([\w/.]+(?:, [\w.]+)*)\s", line + " ")
        if not words or not (words.group(2).endswith(".py") or words.group(2).endswith("/")):
            continue
        indent, names = len(words.group(1)), words.group(2)
        if names.endswith("/"):
            folder = names[:-1] + "."
            continue
        prefix = folder if indent > 4 else ""
        if indent <= 4:
            folder = ""
        order += [f"minansor.{prefix}{name.strip()[:-3]}" for name in names.split(",")]
    return order


@pytest.mark.parametrize("package", ["minansor", "yolo"])
def test_the_import_graph_has_no_cycle(package):
    assert cycle(graph(package)) is None, " -> ".join(cycle(graph(package)))


def test_every_module_is_on_the_map_and_imports_only_what_is_above_it():
    order = map_order()
    modules = {m for m, path in module_files("minansor").items() if not path.endswith("__init__.py")}
    assert sorted(order) == sorted(modules), "the map and the files differ"
    rank = {m: i for i, m in enumerate(order)}
    wrong = [f"{m} imports {t}" for m, targets in graph("minansor").items() if m in rank
             for t in targets if t in rank and rank[t] > rank[m]]
    assert not wrong, wrong


def test_the_library_imports_neither_the_application_nor_the_experiments():
    for dotted, path in module_files("minansor").items():
        outside = {m for m in imports(dotted, path) if m.split(".")[0] in ("yolo", "experiments", "examples")}
        assert not outside, f"{dotted} imports {sorted(outside)}"


def test_the_cycle_finder_finds_a_cycle():
    assert cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert cycle({"a": {"b"}, "b": set()}) is None
