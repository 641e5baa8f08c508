"""The project's modules import only from modules below them: the graph of every
import between them, function-local ones included, has no cycle, and README's file
table lists them in that order."""

from __future__ import annotations

import ast
import graphlib
import re
from pathlib import Path

import pytest
from conftest import PROJECT


def project_modules() -> dict[str, Path]:
    """Module name -> file, for the project's own code (the tests aside)."""
    files = [*PROJECT.glob("*.py"), *(PROJECT / "benchmarks").glob("*.py")]
    return {path.stem: path for path in files}


def imported(path: Path, names: set[str]) -> set[str]:
    """The project modules ``path`` imports anywhere: at the top, inside functions, or
    by ``importlib.import_module("literal")``."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            found.add(str(node.args[0].value).split(".")[0])
    return (found & names) - {path.stem}


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    return {name: imported(path, set(modules)) for name, path in modules.items()}


def test_the_import_graph_has_no_cycle():
    graph = import_graph(project_modules())
    assert {"dcgan", "training", "models", "evaluate", "runs", "cli"} <= set(graph)
    try:
        order = list(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as error:
        pytest.fail(f"import cycle: {' -> '.join(error.args[1])}")
    assert order.index("cli") < order.index("models") < order.index("training")
    assert order.index("training") < order.index("dcgan")


def test_a_cycle_through_a_function_local_import_is_found(tmp_path):
    (tmp_path / "low.py").write_text("def f():\n    import high\n")
    (tmp_path / "high.py").write_text("from low import f\n")
    graph = import_graph({path.stem: path for path in tmp_path.glob("*.py")})
    assert graph == {"low": {"high"}, "high": {"low"}}
    with pytest.raises(graphlib.CycleError):
        graphlib.TopologicalSorter(graph).prepare()


def test_evaluate_and_the_lower_floors_never_import_the_entry_point():
    graph = import_graph(project_modules())
    assert all("dcgan" not in imports for imports in graph.values())
    engines = ("compiled_step", "keras_engine", "parallel")
    assert all("training" not in graph[name] for name in ("evaluate", *engines))


def test_readme_lists_the_modules_floor_by_floor():
    """README's file table names each module below every module it imports."""
    readme = (PROJECT / "README.md").read_text()
    table = readme.split("## What is here")[1].split("\n## ")[0]
    listed = re.findall(r"^\| `(\w+)\.py` \|", table, re.MULTILINE)
    graph = import_graph(project_modules())
    assert set(listed) == {
        name for name, path in project_modules().items() if path.parent == PROJECT
    }
    for name in listed:
        above = set(listed[: listed.index(name)])
        assert graph[name] <= above, f"{name} imports {graph[name] - above} from below it"
