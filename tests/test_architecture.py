"""The house's rules (docs/architecture.md), checked on the import graph of the package: every
``import`` statement, lazy ones inside functions included, resolved to vosuite's modules."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "vosuite"

#: Who may not import whom: a module under the key's package never imports one under the value's.
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "vosuite.options": ("vosuite.",),  # but vosuite.errors (below)
    "vosuite.registry": ("vosuite.",),  # but vosuite.errors and vosuite.options
    "vosuite.io": ("vosuite.nn", "vosuite.models", "vosuite.checkpoints", "vosuite.factory", "vosuite.inference",
                   "vosuite.training", "vosuite.onnx", "vosuite.unsupervised", "vosuite.registry", "vosuite.segment",
                   "vosuite.app"),
    "vosuite.metrics": ("vosuite.nn", "vosuite.models", "vosuite.checkpoints", "vosuite.factory", "vosuite.inference",
                        "vosuite.training", "vosuite.onnx", "vosuite.unsupervised", "vosuite.registry"),
    "vosuite.datasets": ("vosuite.nn", "vosuite.models", "vosuite.checkpoints", "vosuite.factory",
                         "vosuite.inference", "vosuite.training", "vosuite.onnx", "vosuite.unsupervised"),
    "vosuite.nn": ("vosuite.models", "vosuite.checkpoints", "vosuite.factory", "vosuite.inference", "vosuite.training",
                   "vosuite.onnx", "vosuite.unsupervised", "vosuite.registry"),
    "vosuite.checkpoints": ("vosuite.models", "vosuite.factory", "vosuite.inference", "vosuite.training",
                            "vosuite.onnx", "vosuite.unsupervised", "vosuite.registry"),
    "vosuite.models": ("vosuite.checkpoints", "vosuite.factory", "vosuite.inference", "vosuite.training",
                       "vosuite.onnx", "vosuite.unsupervised"),
    "vosuite.factory": ("vosuite.inference", "vosuite.training", "vosuite.onnx", "vosuite.unsupervised",
                        "vosuite.segment", "vosuite.app"),
    "vosuite.inference": ("vosuite.training", "vosuite.onnx", "vosuite.unsupervised", "vosuite.segment",
                          "vosuite.app", "vosuite.cli"),
    "vosuite.unsupervised": ("vosuite.training", "vosuite.segment", "vosuite.app", "vosuite.cli"),
    "vosuite.onnx": ("vosuite.training", "vosuite.segment", "vosuite.app", "vosuite.cli"),
    "vosuite.training": ("vosuite.segment", "vosuite.app", "vosuite.cli"),
}
#: The few exceptions, each with its reason.
ALLOWED = {
    ("vosuite.options", "vosuite.errors"),  # its checks raise the one input error
    ("vosuite.registry", "vosuite.errors"),
    ("vosuite.registry", "vosuite.options"),  # the Task type
}
#: models/ may import from the registry only what registration needs (timm's pattern): no lookups.
REGISTRATION = {"Family", "register_family", "register_model"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in PACKAGE.rglob("*.py")}


def resolve(name: str) -> str | None:
    """The vosuite module ``name`` names (a module, or an attribute of one), or None."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def imports(module: str) -> list[tuple[str, tuple[str, ...]]]:
    """(imported vosuite module, the names taken from it) of every import statement of ``module``."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(resolve(alias.name), ()) for alias in node.names if alias.name.startswith("vosuite")]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            if not base.startswith("vosuite"):
                continue
            for alias in node.names:
                target = resolve(f"{base}.{alias.name}")
                found.append((target, () if target != resolve(base) else (alias.name,)))
    return [(target, names) for target, names in found if target is not None and target != module]


GRAPH = {module: imports(module) for module in MODULES}


def under(module: str, package: str) -> bool:
    """Whether ``module`` is ``package`` or inside it (``package`` ending in "." : any module below it)."""
    if package.endswith("."):
        return module.startswith(package)
    return module == package or module.startswith(package + ".")


def violations(graph: dict[str, list[tuple[str, tuple[str, ...]]]]) -> list[str]:
    """``module -> target`` for every arrow :data:`FORBIDDEN` bans and :data:`ALLOWED` does not excuse."""
    found = []
    for module, targets in graph.items():
        for owner, banned in FORBIDDEN.items():
            if not under(module, owner):
                continue
            for target, _ in targets:
                if under(target, owner) or (owner, target) in ALLOWED:
                    continue
                if any(under(target, package) for package in banned):
                    found.append(f"{module} -> {target}")
    return found


def test_no_forbidden_arrow() -> None:
    assert violations(GRAPH) == []


def test_the_checker_finds_a_forbidden_arrow() -> None:
    fake = {"vosuite.io.masks": [("vosuite.models.deaot", ())], "vosuite.models.deaot": [("vosuite.factory", ())],
            "vosuite.registry": [("vosuite.options", ()), ("vosuite.models", ())]}
    assert violations(fake) == ["vosuite.io.masks -> vosuite.models.deaot", "vosuite.models.deaot -> vosuite.factory",
                                "vosuite.registry -> vosuite.models"]


def test_models_only_register_names() -> None:
    """Networks register their names (``register_model``) but never look one up or build by name."""
    lookups = [f"{module} imports {name}" for module, targets in GRAPH.items() if under(module, "vosuite.models")
               for target, names in targets if target == "vosuite.registry"
               for name in names if name not in REGISTRATION]
    assert lookups == []


def test_no_import_cycle() -> None:
    """No cycle among modules, lazy imports included (the root package's lazy re-exports aside)."""
    graph = {module: {target for target, _ in targets if target != "vosuite"}
             for module, targets in GRAPH.items() if module != "vosuite"}
    cycles = _strongly_connected(graph)
    assert cycles == []


def _strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm: the components of more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return components


def test_the_checker_sees_lazy_imports_and_relative_ones() -> None:
    """The graph is what the code imports, lazy imports inside functions included."""
    targets = {target for target, _ in GRAPH["vosuite.cli"]}
    assert "vosuite.training.engine" in targets  # imported inside _run_train only
    assert "vosuite.factory" in {target for target, _ in GRAPH["vosuite.convert"]}
