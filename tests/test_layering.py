"""The package's import graph: no cycles, and the plain packages stay below training and Lightning.

Read from the source with ``ast`` (every ``import`` statement, module level or inside a function),
so a lazy import does not hide a dependency.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

import medsora

ROOT = Path(medsora.__file__).resolve().parent
PLAIN = ("backbone", "ssm", "vae", "cond", "flow", "diffusion", "data", "metrics")
"""``nn.Module`` and data packages: they know nothing of training, Lightning or the command lines."""
ENTRY_POINTS = ("fit", "encode", "sample", "evaluate", "sweep", "export", "audit", "reader_study")
LIGHTNING = ("lightning", "pytorch_lightning")
LIGHTNING_ALLOWED = {"medsora.data.datamodule"}
"""The one Lightning class of a plain package: the data set's ``LightningDataModule``."""
DATA_MAY_NOT_IMPORT = ("backbone", "vae", "flow", "cond", "diffusion", "encoding", "training", "pretrained")
"""The data package reads files and builds clips; it knows no model, teacher or encoder."""


def _modules() -> dict[str, Path]:
    mods = {}
    for path in ROOT.rglob("*.py"):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = path
    return mods


MODULES = _modules()


def _lazy_exports() -> dict[str, dict[str, str]]:
    """``package -> {name: module}`` of the packages that import their exports on first use (``_LAZY``)."""
    out = {}
    for name, path in MODULES.items():
        if path.name != "__init__.py":
            continue
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "_LAZY" for t in node.targets):
                out[name] = {k.value: v.value for k, v in zip(node.value.keys, node.value.values)}
    return out


LAZY = _lazy_exports()


def _imports(name: str, path: Path) -> set[str]:
    """Everything ``name`` imports: medsora modules resolved to the module file, others by their full name."""
    out = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package
                for _ in range(node.level - 1):
                    parent = parent.rpartition(".")[0]
                base = f"{parent}.{base}" if base else parent
            for alias in node.names:  # ``from pkg import submodule`` depends on the submodule
                full = f"{base}.{alias.name}"
                out.add(full if full in MODULES else LAZY.get(base, {}).get(alias.name, base))
    return {_owner(target) for target in out}


def _owner(target: str) -> str:
    """The medsora module a dotted name lives in (``medsora.a.b.func`` -> ``medsora.a.b``); others unchanged."""
    if not target.startswith("medsora"):
        return target
    name = target
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or target


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in graph:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1 or v in graph.get(v, ()):
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_the_graph_sees_lazy_and_relative_imports():
    assert "medsora.vae.model" in GRAPH["medsora.vae.checkpoint"]
    assert "medsora.backbone.model" in GRAPH["medsora.backbone.presets"]
    # ``from medsora.diffusion import DiffusionObjective`` goes through the package's lazy exports
    assert "medsora.diffusion.objective" in GRAPH["medsora.training.diffusion_module"]
    assert len(GRAPH) > 100


def test_no_import_cycles():
    cycles = _cycles(GRAPH)
    assert not cycles, "import cycles in medsora/: " + "; ".join(" <-> ".join(c) for c in cycles)


def _in(name: str, packages) -> bool:
    return any(name == f"medsora.{p}" or name.startswith(f"medsora.{p}.") for p in packages)


@pytest.mark.parametrize("package", PLAIN)
def test_plain_packages_import_no_training_lightning_or_entry_point(package):
    bad = []
    for name, targets in GRAPH.items():
        if not _in(name, [package]):
            continue
        for target in sorted(targets):
            if _in(target, ["training"]) or _in(target, ENTRY_POINTS):
                bad.append(f"{name} imports {target}")
            if target.split(".")[0] in LIGHTNING and name not in LIGHTNING_ALLOWED:
                bad.append(f"{name} imports {target}")
    assert not bad, "\n".join(bad)


def test_data_knows_no_model_or_teacher():
    bad = [f"{name} imports {target}" for name, targets in GRAPH.items() if _in(name, ["data"])
           for target in sorted(targets) if _in(target, DATA_MAY_NOT_IMPORT)]
    assert not bad, "\n".join(bad)


def test_inference_loaders_import_no_lightning_module():
    """``load_vae`` (VAE decoding for sampling, the encode cache, export) reads checkpoints without Lightning."""
    seen, todo = set(), ["medsora.vae.checkpoint"]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo.extend(t for t in GRAPH.get(name, ()) if t in MODULES)
    lightning_side = sorted(n for n in seen if _in(n, ["training"]))
    assert not lightning_side, f"load_vae depends on {lightning_side}"
    assert not any(t.split(".")[0] in LIGHTNING for n in seen for t in GRAPH[n])
