"""The library's layers point one way: a module imports only from its own layer or the layers
below it (the README's "How it is built"). Checked on every import statement in nanoframe/,
including the ones inside functions."""
import ast
from pathlib import Path

import pytest

import nanoframe

ROOT = Path(nanoframe.__file__).parent

# lowest first; a top-level name of the package (module or subpackage) -> its layer
LAYERS = [
    ("foundation", {"errors", "schema", "dtypes", "device", "random", "runtime", "parallel", "io", "plot",
                    "accelerator", "compiler", "onnx", "backends"}),
    ("tensors and ops", {"autograd", "tensor", "tensor_methods", "tensor_types", "factories", "ops",
                         "functional", "testing", "amp", "cuda"}),
    ("tokenizer", {"tokenizer"}),
    ("layers, optimizers, processes", {"nn", "optim", "utils", "serialization", "distributed"}),
    ("models", {"models"}),
    ("data", {"data"}),
    ("training", {"training"}),
    ("command line", {"cli", "__main__"}),
]
RANK = {name: rank for rank, (_, names) in enumerate(LAYERS) for name in names}


def _top(path):
    rel = path.relative_to(ROOT)
    return rel.parts[0].removesuffix(".py")


def _imported(tree, path):
    """Top-level nanoframe names a module imports (absolute and relative imports)."""
    package = ".".join(("nanoframe",) + path.relative_to(ROOT).parent.parts)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            names = [base + "." + a.name if base == "nanoframe" else base for a in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "nanoframe":
                yield (parts[1] if len(parts) > 1 else "__init__"), node.lineno


def _modules():
    return sorted(p for p in ROOT.rglob("*.py") if p.name != "__init__.py" or p.parent != ROOT)


def test_every_module_has_a_layer():
    missing = sorted({_top(p) for p in _modules()} - set(RANK))
    assert not missing, f"add these to LAYERS: {missing}"


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_point_down(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    here = _top(path)
    upward = []
    for name, line in _imported(tree, path):
        if name == "__init__":              # `import nanoframe`: the package's tensor API
            name = "tensor"
        if name not in RANK:                # a name re-exported by nanoframe/__init__.py
            continue
        if RANK[name] > RANK[here]:
            upward.append(f"line {line}: {here} ({LAYERS[RANK[here]][0]}) imports {name} ({LAYERS[RANK[name]][0]})")
    assert not upward, "\n".join(upward)


def test_the_check_sees_an_upward_import(tmp_path):
    fake = ROOT / "models" / "gpt.py"
    tree = ast.parse("def f():\n    from nanoframe.training import trainer\n")
    names = [n for n, _ in _imported(tree, fake)]
    assert names == ["training"] and RANK["training"] > RANK["models"]
    rel = ast.parse("from ..training.run import Run\n")
    assert [n for n, _ in _imported(rel, fake)] == ["training"]
