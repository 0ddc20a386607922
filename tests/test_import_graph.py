"""The import graph of src/gridseq and the layering rules of docs/architecture.md.

The graph is read with `ast` from the source files, so it holds module-level and function-level
(lazy) imports alike. A module's top-level part is its first name below `gridseq`: `gridseq.models.cnn`
is in `models`, `gridseq.predict` is `predict`. The package's own `__init__` (the public API façade,
which re-exports `models`, `io` and the version) and `__main__` (the `python -m gridseq` shim) are left
out: importing `gridseq.__version__` is not a dependency on every part the façade re-exports.

Rules that hold are asserted outright. Rules that do not hold yet are asserted against the exact list
of known violations (`KNOWN_*` below): a new violation fails, and so does fixing one without removing
it from the list, so the list only shrinks.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "gridseq"

# --- known violations: (importing module, imported module), to be removed as they are fixed -------

# nn, models and data import none of tasks / train / cli / serve / compare / inspect / predict / export
KNOWN_LOWER_IMPORTS_UPPER: set[tuple[str, str]] = set()
# models and nn do not import data
KNOWN_MODELS_NN_IMPORT_DATA: set[tuple[str, str]] = set()
# data does not import tasks or models
KNOWN_DATA_IMPORTS_TASKS_MODELS: set[tuple[str, str]] = set()
# circles between top-level parts (each a strongly connected set of parts)
KNOWN_PART_CIRCLES: list[set[str]] = []
# modules other than gridseq.runs that still read a run directory with io.read_config / open_run
KNOWN_OTHER_RUN_READERS: list[str] = []


def _module_name(path: Path) -> str:
    parts = ("gridseq",) + path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(SRC.rglob("*.py"))}


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The gridseq modules `name` imports anywhere in its file (top level or inside functions)."""
    is_package = path.name == "__init__.py"
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from the package of `name`
                package = name.split(".") if is_package else name.split(".")[:-1]
                base = ".".join(package[: len(package) - node.level + 1] + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            # `from a import b` imports module a.b when there is one, else a name from a
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:  # `import gridseq.x.y` where only gridseq.x is ours
                target = target.rpartition(".")[0]
            if target.startswith("gridseq") and target != name:
                found.add(target)
    return found


def _part(module: str) -> str:
    return module.split(".")[1] if module.count(".") >= 1 else module


EXCLUDED = {"gridseq", "gridseq.__main__"}


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: {t for t in _imports(name, path, known) if t not in EXCLUDED}
            for name, path in modules.items() if name not in EXCLUDED}


def _edges(graph, importers: set[str], imported: set[str]) -> set[tuple[str, str]]:
    return {(a, b) for a, targets in graph.items() if _part(a) in importers for b in targets if _part(b) in imported}


def _circles(edges: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected sets of more than one node (Tarjan's algorithm)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(component)

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def test_the_graph_sees_module_and_function_level_imports(graph):
    assert "gridseq.cli.app" in graph and "gridseq.cli.train" in graph["gridseq.cli.app"]
    assert "gridseq.runs" in graph["gridseq.inspect.run"]  # imported inside inspect_run()


def test_nothing_outside_the_cli_imports_it(graph):
    assert sorted(_edges(graph, set(map(_part, graph)) - {"cli"}, {"cli"})) == []


def test_inspect_serve_and_compare_do_not_import_the_cli(graph):
    assert sorted(_edges(graph, {"inspect", "serve", "compare"}, {"cli"})) == []


def test_no_circle_inside_the_cli(graph):
    cli = {a: {b for b in targets if _part(b) == "cli"} for a, targets in graph.items() if _part(a) == "cli"}
    assert _circles(cli) == []


def test_the_run_directory_has_one_reader():
    """Outside gridseq.runs, only the writer (train.run_dir), the bare-model reader (io) and the
    known holdouts call the low-level readers of a run directory."""
    readers = set()
    for name, path in _modules().items():
        if name in ("gridseq.runs", "gridseq.io", "gridseq.train", "gridseq.train.run_dir"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            called = node.func.attr if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) else (
                node.func.id if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) else None)
            if called in ("open_run", "read_config"):
                readers.add(name)
    assert sorted(readers) == KNOWN_OTHER_RUN_READERS


def test_circles_between_top_level_parts_are_only_the_known_ones(graph):
    parts: dict[str, set[str]] = {}
    for a, targets in graph.items():
        parts.setdefault(_part(a), set()).update(_part(b) for b in targets if _part(b) != _part(a))
    assert sorted(map(sorted, _circles(parts))) == sorted(map(sorted, KNOWN_PART_CIRCLES))


def test_nn_models_and_data_import_nothing_above_them(graph):
    upper = {"tasks", "train", "cli", "serve", "compare", "inspect", "predict", "export", "runs"}
    assert _edges(graph, {"nn", "models", "data"}, upper) == KNOWN_LOWER_IMPORTS_UPPER


def test_models_and_nn_do_not_import_data(graph):
    assert _edges(graph, {"nn", "models"}, {"data"}) == KNOWN_MODELS_NN_IMPORT_DATA


def test_data_does_not_import_tasks_or_models(graph):
    assert _edges(graph, {"data"}, {"tasks", "models"}) == KNOWN_DATA_IMPORTS_TASKS_MODELS
