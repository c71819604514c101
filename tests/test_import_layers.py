"""The package's layers, lowest first: a module imports only from its own layer or those below it,
and no modules import each other round a cycle — what import-linter's "layers" and "independence"
contracts check, here with the standard library's ast on every import statement (those inside
functions too: an import put off until it is needed is still a dependency).

The package's root (keras_resnet/__init__.py) is its facade: it loads the public names lazily from
any layer, and any module may import it (it imports nothing at its own import time but what Keras
registration needs).
"""

import ast
import os

from support.programs import REPOSITORY

PACKAGE = "keras_resnet"
# Lowest first. A module belongs to the layer of the longest prefix that names it or a package above it.
LAYERS = (
    ("base", ("errors", "ranges", "quiet", "files", "internals", "nets.normalization", "nets.specs", "runtime")),  # no TensorFlow (but quiet's import of it)
    ("run", ("run.config", "run.recipes", "run.directory", "run")),  # a run as data: no TensorFlow
    ("nets", ("nets.layers", "nets.blocks", "nets.complexity")),
    ("weights", ("weights",)),
    ("builder", ("nets.builder", "nets")),
    ("data", ("data",)),
    ("resolve", ("run.resolve", "run.weights_source")),  # asks a checkpoint or a run for its network
    ("training", ("training",)),
    ("litert", ("litert",)),
    ("cli", ("cli", "__main__")),
)
def modules():
    """{module name: path} of every module of the package."""
    found = {}
    for folder, _, names in os.walk(os.path.join(REPOSITORY, PACKAGE)):
        for name in names:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                module = os.path.relpath(path, REPOSITORY)[:-3].replace(os.sep, ".").removesuffix(".__init__")
                found[module] = path
    return found


def imports(module, path, known):
    """The package's modules that `module` imports (a name imported from a package that is a module
    of it counts as that module)."""
    package = module if path.endswith("__init__.py") else module.rpartition(".")[0]
    targets = set()
    for node in ast.walk(ast.parse(open(path).read(), path)):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join([*package.split(".")[: len(package.split(".")) - node.level + 1], *filter(None, [base])])
            targets.update(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names)
    return {target for target in targets if target in known and target != module}


def layer_of(module):
    """The index in LAYERS of the layer whose longest prefix names `module` or a package above it."""
    relative = module.removeprefix(f"{PACKAGE}.")
    matches = [
        (len(prefix), index) for index, (_, prefixes) in enumerate(LAYERS) for prefix in prefixes
        if relative == prefix or relative.startswith(f"{prefix}.")
    ]
    if not matches:
        raise AssertionError(f"{module} is in no layer: add it to LAYERS")
    return max(matches)[1]


def graph():
    known = modules()
    return {module: imports(module, path, known) - {PACKAGE} for module, path in known.items() if module != PACKAGE}


def test_every_module_is_in_a_layer():
    for module in graph():
        layer_of(module)


def test_no_module_imports_from_a_higher_layer():
    upward = {
        (module, target) for module, targets in graph().items() for target in targets if layer_of(target) > layer_of(module)
    }
    described = sorted(f"{module} ({LAYERS[layer_of(module)][0]}) imports {target} ({LAYERS[layer_of(target)][0]})" for module, target in upward)
    assert not described, "\n".join(described)


def cycles(edges):
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index, low, stack, on_stack, found, counter = {}, {}, [], set(), [], [0]

    def visit(node):
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for target in edges.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(frozenset(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return set(found)


def test_no_modules_import_each_other_round_a_cycle():
    found = cycles(graph())
    assert not found, [sorted(cycle) for cycle in found]


def test_the_checks_see_an_upward_import_and_a_cycle():
    # The checker itself, on a made-up graph: a base module importing the CLI, two modules round a cycle.
    assert layer_of("keras_resnet.cli.train") > layer_of("keras_resnet.nets.specs")
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == {frozenset("abc")}
    assert imports("keras_resnet.data.pipeline", os.path.join(REPOSITORY, "keras_resnet", "data", "pipeline.py"), modules()) >= {
        "keras_resnet.data.pictures", "keras_resnet.data.records"
    }
