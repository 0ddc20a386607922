"""Outside gridseq.tasks, code does not branch on a task's name: a Task declares its behaviour (what it
streams, what it generates, whether its targets are one class per step, whether its items are exchangeable)
and callers read the declaration. Below the tasks (data, models), where no Task can be imported, a dataset
declares the kind of its targets (`DatasetInfo.targets`, one table in `gridseq.data.targets`: one class per
item, per step, a forecast window, a mask, boxes, ...) and the data layer and the models read that.

The places that still compare a task's name are counted with `ast` (a comparison `==`, `!=`, `in`, `not in`
between a task-name expression — `x.task`, `task`, `task_name`, `x.serves_task`, `getattr(m, "serves_task", None)`, `options.get("task")` — and a
string, a tuple of strings, a `*_TASKS` constant or another name) and asserted against the exact list below:
a new comparison fails, and so does removing one without removing it from the list, so the list only shrinks.
The target (issue 20) is at most 3.
"""

from __future__ import annotations

import ast
from collections import Counter
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "gridseq"

# module -> comparisons of a task's name in it, to be removed as the seams get declarations
KNOWN_TASK_NAME_COMPARISONS = {
    # the text readers check the task asked of a file against the task its format holds (.txt lm, .csv classify,
    # .tsv seq2seq), and name the file each task takes
    "gridseq.data.readers.text_files": 1,
}

_TASK_ATTRS = ("task", "task_name", "serves_task")


def _is_task_name(node: ast.AST) -> bool:
    if isinstance(node, ast.Attribute):
        return node.attr in _TASK_ATTRS or (node.attr == "name" and _is_task_name(node.value))
    if isinstance(node, ast.Name):
        return node.id in ("task", "task_name") or node.id.endswith("_task")
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get" and node.args:
        return isinstance(node.args[0], ast.Constant) and node.args[0].value == "task"
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "getattr" and len(node.args) > 1:
        return isinstance(node.args[1], ast.Constant) and node.args[1].value in _TASK_ATTRS
    return False


def _is_name_value(node: ast.AST) -> bool:
    if isinstance(node, ast.Constant):
        return isinstance(node.value, str)
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return bool(node.elts) and all(isinstance(e, ast.Constant) and isinstance(e.value, str) for e in node.elts)
    return isinstance(node, ast.Name)  # a constant (a `*_TASKS` table) or another task name (expected)


def _compares_task_name(node: ast.Compare) -> bool:
    if not any(isinstance(op, (ast.Eq, ast.NotEq, ast.In, ast.NotIn)) for op in node.ops):
        return False
    operands = [node.left, *node.comparators]
    return any(_is_task_name(a) and any(_is_name_value(b) for b in operands if b is not a) for a in operands)


def task_name_comparisons() -> Counter:
    found = Counter()
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC)
        if rel.parts[0] == "tasks":
            continue
        module = ".".join(("gridseq",) + rel.with_suffix("").parts).removesuffix(".__init__")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Compare) and _compares_task_name(node):
                found[module] += 1
    return found


def test_the_check_sees_a_task_name_comparison():
    tree = ast.parse('if info.task == "tag" or task in ("lm",) or getattr(m, "serves_task", None) != "x" '
                     'or t.task not in TASKS or options.get("task") == "forecast": pass')
    compares = [n for n in ast.walk(tree) if isinstance(n, ast.Compare)]
    assert [_compares_task_name(c) for c in compares] == [True] * 5
    tree = ast.parse('if info.kind == "image" or len(raw) != expected or task.streams == ("steps",): pass')
    assert not any(_compares_task_name(n) for n in ast.walk(tree) if isinstance(n, ast.Compare))


def test_task_names_are_compared_only_in_the_known_places():
    assert dict(task_name_comparisons()) == KNOWN_TASK_NAME_COMPARISONS


def test_the_known_places_only_shrink():
    # issue 20's target is 3; 23 at its start (serve/stream.py alone had 7), 13 before DatasetInfo.targets
    assert sum(KNOWN_TASK_NAME_COMPARISONS.values()) <= 1
