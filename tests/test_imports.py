"""The packages' imports form no cycle: no module imports one that imports it back, directly or
through others. Every import statement counts, those inside functions (made late, to keep start-up
quick) and under TYPE_CHECKING included: each is still a dependency between the two modules."""

from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
PACKAGES = ("bot", "index")


def module_files(root: Path = ROOT) -> dict[str, Path]:
    """Every module of the packages by its dotted name (a package by its own name)."""
    modules = {}
    for package in PACKAGES:
        for file in sorted((root / package).rglob("*.py")):
            parts = file.relative_to(root).with_suffix("").parts
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = file
    return modules


def imported_modules(name: str, file: Path, modules: dict[str, Path]) -> set[str]:
    """The modules of the packages that `name` imports, anywhere in its file."""
    found = set()
    for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"), filename=str(file))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name in modules)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from its own package, or a parent `level - 1` up
                package = name.split(".") if file.name == "__init__.py" else name.split(".")[:-1]
                base = ".".join([*package[: len(package) - node.level + 1], node.module or ""]).strip(".")
            else:
                base = node.module or ""
            for alias in node.names:
                # `from index import storage` imports the module index.storage; `from index.x import y`
                # imports index.x, whatever y is.
                submodule = f"{base}.{alias.name}"
                found.add(submodule if submodule in modules else base)
    return (found & modules.keys()) - {name}


def import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    modules = module_files(root)
    return {name: imported_modules(name, file, modules) for name, file in modules.items()}


def test_no_module_imports_one_that_imports_it_back() -> None:
    graph = import_graph()
    assert {"bot.cli", "index.articles", "index.web.extract"} <= graph.keys()  # the walk finds them
    try:
        TopologicalSorter(graph).prepare()
    except CycleError as error:
        cycle = error.args[1]
        pytest.fail("import cycle: " + " -> ".join(reversed(cycle)))


def test_the_index_imports_nothing_of_the_front_ends() -> None:
    graph = import_graph()
    offending = {name: sorted(m for m in graph[name] if m.startswith("bot")) for name in graph}
    assert {name: found for name, found in offending.items() if name.startswith("index") and found} == {}


def test_a_cycle_is_found_through_late_and_relative_imports(tmp_path: Path) -> None:
    """The walk itself: a cycle made by an import inside a function and a relative import is seen."""
    for package in PACKAGES:
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / "index" / "web").mkdir()
    (tmp_path / "index" / "web" / "__init__.py").write_text("")
    (tmp_path / "index" / "articles.py").write_text("def read():\n    from index.web import extract\n")
    (tmp_path / "index" / "web" / "extract.py").write_text("from ..articles import clean_text\n")
    (tmp_path / "bot" / "cli.py").write_text("import index.articles\n")
    graph = import_graph(tmp_path)
    assert graph["index.articles"] == {"index.web.extract"}
    assert graph["index.web.extract"] == {"index.articles"}
    assert graph["bot.cli"] == {"index.articles"}
    with pytest.raises(CycleError):
        TopologicalSorter(graph).prepare()
