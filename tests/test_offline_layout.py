"""The package's shape: one module owns the workspace folder's layout, and no module imports in a circle."""
import ast
from pathlib import Path

import azureml_offline

PACKAGE = Path(azureml_offline.__file__).parent
# The files and folders of the workspace layout: only backend.py may name them.
LAYOUT_NAMES = {"workspace.json", "computes", "experiments", "runs", "run.json", "status.json", "runner.lock",
                "cancel", "runner.log", "metrics.jsonl", "tags.jsonl", "snapshot", "files", "models", "model.json",
                "services", "service.json", "keys.json", "server.json", "ready", "app", "azureml-models",
                "server.log", "init.log", ".staging"}


def modules():
    return {path.stem: ast.parse(path.read_text()) for path in PACKAGE.glob("*.py")}


def package_imports(tree):
    """The package modules that `tree` imports (from . import x, from .x import y, import azureml_offline.x)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            found |= {node.module} if node.module else {alias.name for alias in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("azureml_offline.")}
    return found


def cycle(graph):
    """A list of modules that import each other in a circle, or None."""
    state = {}

    def visit(module, path):
        state[module] = "open"
        for imported in sorted(graph.get(module, ())):
            if state.get(imported) == "open":
                return path[path.index(imported):] + [imported]
            if imported not in state:
                found = visit(imported, path + [imported])
                if found:
                    return found
        state[module] = "done"
        return None

    for module in sorted(graph):
        if module not in state:
            found = visit(module, [module])
            if found:
                return found
    return None


def test_no_module_imports_in_a_circle():
    graph = {name: package_imports(tree) for name, tree in modules().items()}
    assert graph["run"] and graph["experiment"]  # the parser does see the package's imports
    assert cycle(graph) is None


def test_the_check_finds_a_circle():
    assert cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert cycle({"a": {"b"}, "b": set()}) is None


def test_no_module_but_the_backend_names_a_workspace_file_or_its_root():
    for name, tree in modules().items():
        if name in ("backend", "__init__"):
            continue
        named = {node.value for node in ast.walk(tree) if isinstance(node, ast.Constant) and node.value in LAYOUT_NAMES}
        assert not named, f"{name}.py names {named}: only backend.py knows the workspace layout"
        roots = [node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute) and node.attr == "_root"]
        assert not roots, f"{name}.py reaches into a workspace's _root"
