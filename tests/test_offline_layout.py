"""The package's shape: one module owns the workspace folder's layout, no module (of the package or its
subpackages) imports in a circle, no module or test reaches into another module's private attributes, and a
wheel of the package holds all of it."""

import ast
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import azureml_offline

PACKAGE = Path(azureml_offline.__file__).parent
# The files and folders of the workspace layout: only state/layout.py may name them.
LAYOUT_NAMES = {
    "workspace.json",
    "computes",
    "experiments",
    "runs",
    "run.json",
    "status.json",
    "runner.lock",
    "cancel",
    "runner.log",
    "runner.reserve",
    "metrics.jsonl",
    "tags.jsonl",
    "properties.jsonl",
    "display.json",
    "experiment.json",
    "snapshot",
    "files",
    "models",
    "model.json",
    "services",
    "service.json",
    "keys.json",
    "server.json",
    "ready",
    "app",
    "azureml-models",
    "server.log",
    "init.log",
    ".staging",
}


def module_name(path):
    """The dotted name of a module of the package within it: "run", "engine.runner", "state" (a package's
    __init__)."""
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts) or "__init__"


def modules():
    return {module_name(path): ast.parse(path.read_text()) for path in PACKAGE.rglob("*.py")}


def package_imports(name, tree, known):
    """The package modules that module `name` imports (from . import x, from ..x import y, import
    azureml_offline.x.y), as dotted names within the package; `known` holds every module's name."""
    package = name.split(".")[:-1] if name not in known or not is_package(name) else name.split(".")
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package[: len(package) - node.level + 1]
            stem = base + (node.module.split(".") if node.module else [])
            for alias in node.names:
                candidate = ".".join(stem + [alias.name])
                found.add(candidate if candidate in known else ".".join(stem) or "__init__")
        elif isinstance(node, ast.Import):
            found |= {
                a.name.removeprefix("azureml_offline.") for a in node.names if a.name.startswith("azureml_offline.")
            }
    return {module for module in found if module in known and module != name}


def is_package(name):
    return (PACKAGE.joinpath(*name.split(".")) / "__init__.py").exists()


def cycle(graph):
    """A list of modules that import each other in a circle, or None."""
    state = {}

    def visit(module, path):
        state[module] = "open"
        for imported in sorted(graph.get(module, ())):
            if state.get(imported) == "open":
                return path[path.index(imported) :] + [imported]
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


def import_graph():
    trees = modules()
    return {name: package_imports(name, tree, set(trees)) for name, tree in trees.items()}


def test_no_module_imports_in_a_circle():
    graph = import_graph()
    # The parser sees the package's imports, also from and into its subpackages.
    assert {"backend", "state.files"} <= graph["run"] and "engine.openblas" in graph["engine.processes"]
    assert {"backend.runs", "backend.services", "state.layout"} <= graph["backend"]
    assert {"engine.server", "state.layout"} <= graph["backend.services"] and "engine.launch" in graph["backend.runs"]
    assert "state.files" in graph["state.layout"] and "experiment" in graph["engine.script_binding"]
    assert cycle(graph) is None


def test_a_runs_runner_imports_none_of_the_sdk():
    """Every run starts a runner process: the SDK, slow to import, is imported only where it is used."""
    imported = "import sys, azureml_offline.engine.runner; print(*(m for m in sys.modules if m.startswith('azureml.')))"
    found = subprocess.run([sys.executable, "-c", imported], capture_output=True, text=True, check=True).stdout
    assert found.split() == []


def test_the_check_finds_a_circle():
    assert cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert cycle({"a": {"b"}, "b": set()}) is None


def test_no_module_but_the_backend_names_a_workspace_file_or_its_root():
    for name, tree in modules().items():
        if name in ("state.layout", "__init__"):
            continue
        named = {node.value for node in ast.walk(tree) if isinstance(node, ast.Constant) and node.value in LAYOUT_NAMES}
        assert not named, f"{name} names {named}: only state/layout.py knows the workspace layout"
        roots = [node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute) and node.attr == "_root"]
        assert not roots, f"{name} reaches into a workspace's _root"


# Private reaches: `x._name` where `_name` is an attribute that another module sets (assigns, or defines as a
# method, class attribute or module-level name). Names the SDK sets are not the package's, and not counted.
TESTS = Path(__file__).parent


def is_private(name):
    return name.startswith("_") and not name.startswith("__") and len(name) > 1


def private_names_set(tree):
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            names.add(node.attr)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
    return {name for name in names if is_private(name)}


def private_reaches(tree, others):
    """The `x._name` of module `tree` whose _name is not set in it but in one of `others` (their set names)."""
    own = private_names_set(tree)
    elsewhere = set().union(*others)
    return sorted(
        f"{node.lineno}: ._{node.attr[1:]}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and isinstance(node.ctx, ast.Load)
        and is_private(node.attr)
        and node.attr not in own
        and node.attr in elsewhere
    )


def test_no_module_of_the_package_reaches_into_another_s_private_attributes():
    trees = modules()
    sets = {name: private_names_set(tree) for name, tree in trees.items()}
    reaches = {
        name: private_reaches(tree, [names for other, names in sets.items() if other != name])
        for name, tree in trees.items()
    }
    assert {name: found for name, found in reaches.items() if found} == {}


def test_no_test_reaches_into_the_package_s_private_attributes():
    package = [private_names_set(tree) for tree in modules().values()]
    counts = {}
    for path in sorted(TESTS.glob("*.py")):
        found = private_reaches(ast.parse(path.read_text()), package)
        if found:
            counts[path.name] = found
    assert counts == {}


def test_the_counter_finds_a_planted_reach():
    owner = ast.parse(
        "class Run:\n    def __init__(self):\n        self._folder = 1\n    def _open(self):\n"
        "        return self._folder\n"
    )
    reader = ast.parse("def f(run, config):\n    return run._folder, run.id, config._sdk_only, Run._open\n")
    assert private_reaches(owner, []) == []  # its own attribute
    assert private_reaches(reader, [private_names_set(owner)]) == ["2: ._folder", "2: ._open"]


def test_a_wheel_holds_every_module_of_the_package(tmp_path):
    """What `pip install .` (not -e) installs: every subpackage, and the runner's sitecustomize."""
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(PACKAGE.parent / name, tmp_path)
    shutil.copytree(PACKAGE, tmp_path / PACKAGE.name, ignore=shutil.ignore_patterns("__pycache__"))
    build = [sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "--no-build-isolation", "-q", "-w", "dist"]
    subprocess.run(build, cwd=tmp_path, check=True, capture_output=True)
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    packaged = {name for name in zipfile.ZipFile(wheel).namelist() if name.startswith(PACKAGE.name + "/")}
    expected = {path.relative_to(tmp_path).as_posix() for path in (tmp_path / PACKAGE.name).rglob("*.py")}
    assert sorted(expected - packaged) == []
