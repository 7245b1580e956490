"""The package's imports form no loop and point only down the stage order.

io ← generate, ntuplize ← weights ← train, models ← evaluate: a stage may import an earlier stage, never a
later one. The top-level modules split in two: contracts and shared helpers (schema, params, config,
provenance, ...), which any stage may import and which import no stage but io; and the orchestration that
drives the stages (cli, jobs, the workflow's config check), which no stage imports. Read from the source
(ast), so every import counts, also those inside functions.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "colliderflow"
STAGE_ORDER = {"io": 0, "generate": 1, "ntuplize": 1, "weights": 2, "train": 3, "models": 3, "evaluate": 4}
ORCHESTRATION = {"colliderflow.cli", "colliderflow.__main__", "colliderflow.jobs", "colliderflow.workflow_config"}


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def import_graph() -> dict[str, set[str]]:
    """{module: the colliderflow modules it imports} (a `from pkg import name` counts as pkg.name when
    that is a module, else as pkg)."""
    modules = _modules()
    graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    source = ".".join(base + ([node.module] if node.module else []))
                else:
                    source = node.module or ""
                for alias in node.names:
                    full = f"{source}.{alias.name}"
                    targets.add(full if full in modules else source)
        graph[name] = {t for t in targets if t in modules and t != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import loops: strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
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
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _stage(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in STAGE_ORDER else None


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    """Every arrow against the order, as `importer -> imported (why)`."""
    bad = []
    for source in sorted(graph):
        for target in sorted(graph[source]):
            s, t = _stage(source), _stage(target)
            if target in ORCHESTRATION and source not in ORCHESTRATION:
                bad.append(f"{source} -> {target} (orchestration is imported by no one below it)")
            elif s and t and STAGE_ORDER[t] > STAGE_ORDER[s]:
                bad.append(f"{source} -> {target} ({s} may not import the later stage {t})")
            elif s is None and source not in ORCHESTRATION and t not in (None, "io"):
                bad.append(f"{source} -> {target} (a shared top-level module imports no stage but io)")
    return bad


def test_the_graph_sees_imports():
    """The walker finds real arrows (a test of the test: an empty graph has no cycles either)."""
    graph = import_graph()
    assert "colliderflow.io.atomic" in graph["colliderflow.io.tfds_writer"]
    assert "colliderflow.config" in graph["colliderflow.params"]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    up = {"colliderflow.io.x": {"colliderflow.train.y"}, "colliderflow.train.y": {"colliderflow.jobs"},
          "colliderflow.schema": {"colliderflow.ntuplize.z"}}
    assert [line.split(" (")[0] for line in upward_imports(up)] == [
        "colliderflow.io.x -> colliderflow.train.y",
        "colliderflow.schema -> colliderflow.ntuplize.z",
        "colliderflow.train.y -> colliderflow.jobs",
    ]


def test_no_import_loops():
    loops = cycles(import_graph())
    assert loops == [], f"import loops: {loops}"


def test_imports_point_down_the_stage_order():
    bad = upward_imports(import_graph())
    assert bad == [], "imports against the stage order:\n" + "\n".join(bad)
