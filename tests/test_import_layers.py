"""The package's imports point down its layers and never form a cycle (docs/DESIGN.md §9).

Every ``import`` in ``dynamonet_tf`` (function-level ones included) is read with ``ast``, so a
lazy import cannot hide an upward arrow.
"""

import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "dynamonet_tf"

# Each top-level module or sub-package of dynamonet_tf and its layer: a unit may import only
# units of lower layers (and itself).
LAYERS = {
    # The contracts: names, places on disk, atomic writing, Markdown tables.
    "names": 0,
    "layout": 0,
    "atomic_files": 0,
    "markdown": 0,
    # Plain-text tables of the commands' output (evaluate.py, evaluate_frame_prediction.py).
    "text_table": 0,
    "config": 1,
    # The one-writer lock of a run folder: on layout's names (a unit may not import its own
    # layer's), so above them.
    "run_lock": 1,
    # What a folder is and whether a command may replace it: on layout's names, so above them.
    "ownership": 1,
    # Checkpoint folders read by the files present, damage named and survived.
    "checkpoint_files": 1,
    "layers": 2,
    "models": 3,
    "losses": 4,
    "frame_metrics": 4,
    "video_accuracy": 4,
    "data": 5,
    # The matplotlib figures (Figure 3, the confusion matrix): captions scored by frame_metrics.
    "plots": 5,
    "runs": 6,
    "evaluation": 7,
    "export": 7,
    "frame_prediction": 7,
    "inference": 8,
    "training": 8,
    "cli": 9,
    "configs": 9,  # YAML presets, no Python
}


def module_name(path):
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_imports(path):
    """The ``dynamonet_tf`` modules imported by the file at ``path``."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    imported = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module
            imported.add(target)
            # `from dynamonet_tf import export` imports the module dynamonet_tf.export.
            imported.update(f"{target}.{alias.name}" for alias in node.names)
    return {module for module in imported if module.split(".")[0] == "dynamonet_tf"}


def unit(module):
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def modules():
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def test_every_unit_has_a_layer():
    units = {unit(name) for name in modules()} - {None}
    assert units <= set(LAYERS), f"give these a layer in LAYERS: {sorted(units - set(LAYERS))}"


def test_imports_point_down():
    known = modules()
    upward = set()
    for name, path in known.items():
        for target in package_imports(path):
            if target not in known and target.rpartition(".")[0] in known:
                target = target.rpartition(".")[0]  # `from package.module import name`
            if target not in known or unit(target) is None or unit(target) == unit(name):
                continue
            if LAYERS[unit(target)] >= LAYERS[unit(name)]:
                upward.add(f"{name} -> {target}")
    assert not upward, "imports that do not point down:\n" + "\n".join(sorted(upward))


def test_no_import_cycles():
    known = modules()
    graph = {}
    for name, path in known.items():
        targets = set()
        for target in package_imports(path):
            while target not in known and "." in target:
                target = target.rpartition(".")[0]
            # A package's __init__ is run by importing any of its modules, not an edge.
            if target in known and target != name and not name.startswith(f"{target}."):
                targets.add(target)
        graph[name] = targets
    state, path = {}, []

    def visit(node):
        state[node] = "open"
        path.append(node)
        for target in graph[node]:
            if state.get(target) == "open":
                cycle = path[path.index(target) :] + [target]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if target not in state:
                visit(target)
        path.pop()
        state[node] = "done"

    for node in graph:
        if node not in state:
            visit(node)


def test_the_checker_sees_an_upward_import(tmp_path):
    """The walk itself: an upward arrow written as a lazy relative import is found."""
    source = tmp_path / "dynamonet_tf" / "models" / "probe.py"
    source.parent.mkdir(parents=True)
    source.write_text("def f():\n    from ..training import trainer\n")
    global PACKAGE
    saved, PACKAGE = PACKAGE, tmp_path / "dynamonet_tf"
    try:
        assert package_imports(source) == {"dynamonet_tf.training", "dynamonet_tf.training.trainer"}
    finally:
        PACKAGE = saved
