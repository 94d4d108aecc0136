"""The package's shape: no import circle, no reach into another package's
private modules, no module over 400 lines."""

import ast
import pathlib

import keras_compress

ROOT = pathlib.Path(keras_compress.__file__).parent
MAX_LINES = 400


def _modules():
    found = {}
    for path in ROOT.rglob("*.py"):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _imports(path, modules):
    """Every keras_compress module `path` imports, at any depth of the file."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("keras_compress"):
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                yield (full if full in modules else node.module), alias.name
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("keras_compress"):
                    yield alias.name, ""


def _package(module):
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_no_package_imports_another_packages_private_names():
    modules = _modules()
    bad = []
    for name, path in modules.items():
        for target, imported in _imports(path, modules):
            parts = target.split(".")
            if len(parts) > 1 and parts[1].startswith("_"):
                continue  # Top-level internals (_io, _tflite, ...) are shared.
            if _package(target) == _package(name):
                continue
            if any(p.startswith("_") for p in parts[2:]) or imported.startswith("_"):
                bad.append(f"{name} imports {target} {imported}".strip())
    assert bad == []


def test_no_import_circle():
    modules = _modules()
    edges = {name: {t for t, _ in _imports(path, modules) if t in modules and t != name}
             for name, path in modules.items()}
    # A package's __init__ re-exporting its own modules is not a circle.
    for name in edges:
        edges[name] = {t for t in edges[name]
                       if not (name.startswith(t + ".") and t in modules)}
    state, cycles = {}, []

    def visit(node, trail):
        state[node] = "open"
        for nxt in sorted(edges[node]):
            if state.get(nxt) == "open":
                cycles.append(trail[trail.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, trail + [nxt])
        state[node] = "done"

    for name in sorted(edges):
        if name not in state:
            visit(name, [name])
    assert cycles == []


def test_modules_stay_small():
    sizes = {str(p.relative_to(ROOT)): len(p.read_text().splitlines())
             for p in ROOT.rglob("*.py")}
    over = sorted(p for p, n in sizes.items() if n > MAX_LINES)
    assert over == [], f"modules over {MAX_LINES} lines: {over}"
