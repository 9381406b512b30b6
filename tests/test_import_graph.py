"""No circular imports between scalepy's modules, type-only and deferred ones included.

The graph has an edge for every import of one scalepy module by another: at module
level, under `if TYPE_CHECKING:` and inside functions alike, since each is a
dependency a reader must follow. `ALLOWED` names the few imports that still close a
cycle, each with the reason it stays; without them the graph must have no cycle, so
a new one fails here, and an entry whose import is gone must be dropped.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"

# (importer, imported): why the import stays. All are type-only or deferred imports.
ALLOWED = {
    ("scalepy.health._asgi", "scalepy.health._health"): (
        "HealthApp serves a Health; left for after h13-telemetry, which is rewriting both files"
    ),
    ("scalepy.health._health", "scalepy.integrations.starlette"): (
        "Health.routes() calls the Starlette integration when called; left for after "
        "h13-telemetry (integrations/*)"
    ),
    ("scalepy.queue._task", "scalepy.queue._queue"): (
        "`Task.queue` is public and is a Queue: a protocol would hide its type from users"
    ),
    ("scalepy.queue._job", "scalepy.queue._queue"): (
        "a Job waits for its result and cancels through its Queue's store and settings"
    ),
    ("scalepy.queue._health", "scalepy.queue._queue"): (
        "queue_check reads Queue.stats(); moving QueueStats out of _queue.py is left for "
        "after h13-telemetry, which is editing the queue's modules"
    ),
    ("scalepy.queue._sending", "scalepy.queue._task"): (
        "send() takes a Task's EnqueueOptions; moving them out of _task.py is left for "
        "after h13-telemetry"
    ),
}


def module_name(path: Path, root: Path) -> str:
    """The dotted name of the module at `path`: a package's for its `__init__.py`."""
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(root: Path, package: str) -> dict[str, dict[str, int]]:
    """Each module of `package` under `root` -> {module of `package` it imports: line}."""
    paths = {module_name(path, root): path for path in sorted((root / package).rglob("*.py"))}
    graph: dict[str, dict[str, int]] = {}
    for name, path in paths.items():
        here = name if path.name == "__init__.py" else name.rpartition(".")[0]
        imported: dict[str, int] = {}
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: resolved against this module's package
                    anchor = here.split(".")[: len(here.split(".")) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                # `from package import module` imports the module, else the package.
                targets = [f"{base}.{alias.name}" for alias in node.names]
                targets = [target if target in paths else base for target in targets]
            else:
                continue
            for target in targets:
                while target not in paths and "." in target:  # `import a.b.c` uses a.b.c's
                    target = target.rpartition(".")[0]  # nearest module of the package
                if target in paths and target != name:
                    imported.setdefault(target, node.lineno)
        graph[name] = imported
    return graph


def cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """The graph's strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for target in graph[module]:
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            component: list[str] = []
            while not component or component[-1] != module:
                component.append(stack.pop())
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return sorted(found)


def describe(graph: dict[str, dict[str, int]], component: list[str]) -> str:
    """The imports inside one cycle, one a line, with the line each is made on."""
    return "\n".join(
        f"{source} -> {target} (line {line})"
        for source in component
        for target, line in graph[source].items()
        if target in component
    )


def test_no_import_cycle_outside_the_allow_list() -> None:
    """Without the allowed imports, scalepy's module graph has no cycle."""
    graph = import_graph(SRC, "scalepy")
    assert len(graph) > 100  # the whole package was read
    pruned = {
        source: {
            target: line for target, line in targets.items() if (source, target) not in ALLOWED
        }
        for source, targets in graph.items()
    }
    assert [] == [describe(pruned, component) for component in cycles(pruned)]


def test_every_allowed_import_still_exists() -> None:
    """An allow-list entry whose import is gone is dropped, so the list only shrinks."""
    graph = import_graph(SRC, "scalepy")
    assert [] == [edge for edge in ALLOWED if edge[1] not in graph.get(edge[0], {})]


def test_type_only_deferred_and_relative_imports_count(tmp_path: Path) -> None:
    """A cycle closed under TYPE_CHECKING, inside a function or by a relative import is found."""
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from pkg import b\n")
    (package / "b.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.a import A\n"
    )
    (package / "c.py").write_text("def f():\n    import pkg.d.x\n")
    (package / "d.py").write_text("from .c import f\n")
    (package / "e.py").write_text("import json\nfrom pkg import a\n")
    graph = import_graph(tmp_path, "pkg")
    assert {"pkg.b": 1} == graph["pkg.a"]
    assert {"pkg.a": 3} == graph["pkg.b"]
    assert [["pkg.a", "pkg.b"], ["pkg.c", "pkg.d"]] == cycles(graph)
    assert "pkg.a -> pkg.b (line 1)\npkg.b -> pkg.a (line 3)" == describe(graph, ["pkg.a", "pkg.b"])
