"""The package is layered one way: a module imports only from its own layer or the layers below it.

Checked twice: statically (every ``import`` in every module, function-local ones included) and
at run time (importing a layer in a fresh interpreter loads no module of a layer above it).
Also the house rules that keep the layers readable: no private name imported across modules,
no function over 60 lines, no file over 500 lines.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "circuits"

#: bottom to top; a module may import from its own layer and the ones before it
LAYERS: list[tuple[str, ...]] = [
    ("circuits.config", "circuits.atomic"),
    ("circuits.model",),
    ("circuits.training",),
    ("circuits.hf",),
    ("circuits.analysis",),
    ("circuits.views",),
    ("circuits.experiments",),
    ("circuits.runner", "circuits.run_record"),
    ("circuits.report",),
    ("circuits.cli", "circuits.__main__"),
]


def layer_of(module: str) -> int | None:
    for i, prefixes in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return i
    return None


def modules() -> list[tuple[str, Path]]:
    out = []
    for path in sorted(SRC.rglob("*.py")):
        parts = path.relative_to(SRC.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out.append((name, path))
    return out


def imports(path: Path, module: str) -> list[tuple[str, list[str], int]]:
    """(imported module, imported names, line) of every import statement, relative ones resolved."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(a.name, [], node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            found.append((base, [a.name for a in node.names], node.lineno))
    return found


def test_every_module_belongs_to_a_layer():
    orphans = [name for name, _ in modules() if name != "circuits" and layer_of(name) is None]
    assert not orphans, f"modules outside every layer (add them to LAYERS or move them): {orphans}"


def test_no_module_imports_from_a_layer_above_it():
    violations = []
    for name, path in modules():
        own = layer_of(name)
        if own is None:  # the package root: a lazy table of the public API, imports nothing at import time
            continue
        for target, names, line in imports(path, name):
            if target == "circuits":  # ``from circuits import X``: resolve X through the public table
                import circuits

                targets = [circuits._WHERE.get(n, f"circuits.{n}") for n in names]
            else:
                targets = [target]
            for t in targets:
                other = layer_of(t)
                if other is not None and other > own:
                    violations.append(f"{path.relative_to(SRC.parent)}:{line} ({name}, layer {own}) imports {t} (layer {other})")
    assert not violations, "imports from a higher layer:\n" + "\n".join(violations)


@pytest.mark.parametrize("layer", [p for prefixes in LAYERS[:-1] for p in prefixes])
def test_importing_a_layer_loads_nothing_above_it(layer):
    code = f"import sys, json, {layer}; print(json.dumps(sorted(m for m in sys.modules if m.startswith('circuits'))))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    own = layer_of(layer)
    above = [m for m in json.loads(out) if (layer_of(m) or 0) > own]
    assert not above, f"importing {layer} loaded modules of higher layers: {above}"


def test_no_private_names_imported_across_modules():
    bad = []
    for name, path in modules():
        for target, names, line in imports(path, name):
            if target.startswith("circuits"):
                bad += [f"{path.relative_to(SRC.parent)}:{line} imports {target}.{n}" for n in names if n.startswith("_") and not n.startswith("__")]
                leaf = target.rsplit(".", 1)[-1]
                if leaf.startswith("_") and not leaf.startswith("__") and target.rsplit(".", 1)[0] != name.rsplit(".", 1)[0]:
                    bad.append(f"{path.relative_to(SRC.parent)}:{line} imports private module {target} from another package")
    assert not bad, "private names used across modules:\n" + "\n".join(bad)


def test_functions_and_files_are_short():
    long_functions, long_files = [], []
    for name, path in modules():
        text = path.read_text(encoding="utf-8")
        if text.count("\n") > 500:
            long_files.append(f"{path.relative_to(SRC.parent)}: {text.count(chr(10))} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > 60:
                    long_functions.append(f"{path.relative_to(SRC.parent)}:{node.lineno} {node.name} ({length} lines)")
    assert not long_files, "files over 500 lines:\n" + "\n".join(long_files)
    assert not long_functions, "functions over 60 lines:\n" + "\n".join(long_functions)
