"""The package's import structure, read from the source with ``ast``.

* The import graph of ``refdeblur`` has no cycles (module-level and
  function-level imports, relative ones resolved, a package's ``__init__``
  counted where a submodule import runs it).
* Only ``refdeblur/_engine/`` imports numba.
* No module imports another module's private name (``_name``), nor reads one
  as an attribute of an imported module; private *modules* may be imported.
* Imports inside functions are only of heavy optional dependencies.
* ``import refdeblur`` changes no environment variable and starts no thread.
* Without numba, the package imports, estimates a kernel, deconvolves and
  passes a layer's gradient check (in a child process where ``import
  numba`` fails, so that this runs where numba is installed too).

Each failure lists every violation with its file and line.
"""

import ast
import json
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path
from typing import NamedTuple

import numpy as np
from scipy.signal import fftconvolve
from skimage import data, transform

import refdeblur
from refdeblur import gradcheck
from refdeblur.layers.conv2d import Conv2D
from refdeblur.models import load_shipped_model

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "refdeblur"
ENGINE = "refdeblur._engine"

#: Third-party packages a function may import, to keep a heavy optional
#: dependency out of ``import refdeblur``.
LAZY_IMPORTS_ALLOWED = {"matplotlib", "tqdm", "dask", "torch", "imagecodecs"}


class Import(NamedTuple):
    importer: str      # module doing the import
    path: str          # its file, relative to the repository
    line: int
    target: str        # imported module, absolute
    name: str          # name imported from it ("" for ``import x``)
    local: bool        # inside a function


def module_name(path):
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _resolve(importer, is_package, module, level):
    if level == 0:
        return module
    base = importer.split(".")
    base = base if is_package else base[:-1]
    base = base[:len(base) - (level - 1)]
    return ".".join(base + ([module] if module else []))


class _Collector(ast.NodeVisitor):
    def __init__(self, importer, path, is_package):
        self.importer, self.path, self.is_package = importer, path, is_package
        self.function_depth = 0
        self.imports = []
        self.aliases = {}          # local name -> imported refdeblur module
        self.private_reads = []    # (line, module, attribute)

    def _function(self, node):
        self.function_depth += 1
        self.generic_visit(node)
        self.function_depth -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _function

    def _add(self, node, target, name, bound_as):
        self.imports.append(Import(self.importer, self.path, node.lineno, target, name,
                                   self.function_depth > 0))
        module = f"{target}.{name}" if name else target
        if module in MODULES and bound_as:
            self.aliases[bound_as] = module

    def visit_Import(self, node):
        for alias in node.names:      # ``import a.b`` binds ``a``, not ``a.b``
            self._add(node, alias.name, "", alias.asname)

    def visit_ImportFrom(self, node):
        base = _resolve(self.importer, self.is_package, node.module, node.level)
        for alias in node.names:
            submodule = f"{base}.{alias.name}"
            if submodule in MODULES:          # ``from package import module``
                self._add(node, submodule, "", alias.asname or alias.name)
            else:
                self._add(node, base, alias.name, alias.asname or alias.name)

    def visit_Attribute(self, node):
        if (isinstance(node.value, ast.Name) and node.value.id in self.aliases
                and _is_private(node.attr)):
            self.private_reads.append((node.lineno, self.aliases[node.value.id], node.attr))
        self.generic_visit(node)


def _is_private(name):
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _collect():
    imports, private_reads = [], []
    for module, path in MODULES.items():
        relative = str(path.relative_to(ROOT))
        collector = _Collector(module, relative, path.name == "__init__.py")
        collector.visit(ast.parse(path.read_text(encoding="utf-8"), filename=relative))
        imports += collector.imports
        private_reads += [(relative, line, target, name)
                          for line, target, name in collector.private_reads]
    return imports, private_reads


IMPORTS, PRIVATE_READS = _collect()


def _internal(target):
    return target == "refdeblur" or target.startswith("refdeblur.")


def _module_of(target):
    """The refdeblur module a target names (a module, or a package's __init__)."""
    while target and target not in MODULES:
        target = target.rpartition(".")[0]
    return target


def import_graph():
    """``{module: {imported module: first (path, line)}}`` over refdeblur.

    Importing ``a.b.c`` also runs the packages ``a.b`` (except the
    importer's own packages, which are already running); the root package
    ``refdeblur`` only counts where it is imported by name.
    """
    graph = {module: {} for module in MODULES}
    for item in IMPORTS:
        if not _internal(item.target):
            continue
        target = _module_of(item.target)
        targets = [target]
        parts = target.split(".")
        for end in range(2, len(parts)):
            package = ".".join(parts[:end])
            if not item.importer.startswith(package + ".") and package != item.importer:
                targets.append(package)
        for module in targets:
            if module != item.importer:
                graph[item.importer].setdefault(module, (item.path, item.line))
    return graph


def find_cycles(graph):
    """The strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, components = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in graph[node]:
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
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

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10 * len(graph) + 100))
    try:
        for node in sorted(graph):
            if node not in index:
                visit(node)
    finally:
        sys.setrecursionlimit(limit)
    return components


def _report(title, lines):
    return f"{title} ({len(lines)}):\n" + "\n".join(f"  {line}" for line in lines)


def test_import_graph_has_no_cycles():
    graph = import_graph()
    lines = []
    for component in find_cycles(graph):
        members = set(component)
        lines.append("cycle: " + " <-> ".join(component))
        lines += [f"    {source} -> {target}  ({path}:{line})"
                  for source in component
                  for target, (path, line) in sorted(graph[source].items())
                  if target in members]
    assert not lines, _report("import cycles", lines)


def test_only_the_engine_imports_numba():
    lines = [f"{item.path}:{item.line}: imports {item.target}"
             for item in IMPORTS
             if item.target.split(".")[0] in ("numba", "llvmlite")
             and not (item.importer == ENGINE or item.importer.startswith(ENGINE + "."))]
    assert not lines, _report("numba imported outside refdeblur/_engine", lines)


def test_no_private_names_cross_modules():
    lines = [f"{item.path}:{item.line}: from {item.target} import {item.name}"
             for item in IMPORTS
             if _internal(item.target) and item.name and _is_private(item.name)]
    lines += [f"{path}:{line}: reads {target}.{name}"
              for path, line, target, name in PRIVATE_READS]
    assert not lines, _report("private names used across modules", sorted(lines))


def test_function_level_imports_only_for_heavy_optional_dependencies():
    lines = [f"{item.path}:{item.line}: "
             + (f"from {item.target} import {item.name}" if item.name
                else f"import {item.target}")
             for item in IMPORTS
             if item.local and item.target.split(".")[0] not in LAZY_IMPORTS_ALLOWED]
    assert not lines, _report("imports inside functions", lines)


def _run_python(code, args=()):
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)


def test_import_has_no_side_effects():
    result = _run_python("""
        import json, os, threading
        before = dict(os.environ)
        import refdeblur
        after = dict(os.environ)
        print(json.dumps({
            "changed": sorted(k for k in set(before) | set(after)
                              if before.get(k) != after.get(k)),
            "threads": [t.name for t in threading.enumerate()],
        }))
    """)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.splitlines()[-1])
    assert report["changed"] == [], f"import refdeblur changed {report['changed']}"
    assert report["threads"] == ["MainThread"], f"threads after import: {report['threads']}"


def workload():
    """What the no-numba test computes, with and without numba."""
    rng = np.random.default_rng(5)
    kernel = refdeblur.sample_kernel(17, rng)
    sharp = transform.resize(data.camera() / 255.0, (176, 176), anti_aliasing=True)
    blurry = np.clip(fftconvolve(sharp, kernel, mode="valid")
                     + 0.01 * rng.standard_normal((160, 160)), 0.0, 1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", refdeblur.DeblurWarning)  # a large blur: no concern
        estimate = refdeblur.estimate_kernel(blurry, 17)
    network = load_shipped_model(17, dtype=np.float64)
    layer = Conv2D(2, 3, 5, method="direct")
    params = {"weight": rng.standard_normal((3, 2, 5, 5)), "bias": rng.standard_normal(3)}
    x = rng.standard_normal((2, 2, 11, 8))
    _, cache = layer.forward(x, params)

    def vjp(dout):
        dx, grads = layer.backward(dout, cache)
        return [dx, grads["weight"], grads["bias"]]

    errors = gradcheck.check_vjp(
        lambda x, weight, bias: layer.forward(x, {"weight": weight, "bias": bias})[0],
        [x, params["weight"], params["bias"]], vjp, rng=rng)
    return {"kernel": kernel, "estimate": estimate,
            "network_kernel": network.forward(blurry).kernel,
            "latent": refdeblur.deconvolve(blurry, kernel),
            "gradient_errors": np.asarray(errors)}


WITHOUT_NUMBA = """
import json, sys, warnings
sys.modules["numba"] = None          # ``import numba`` raises ImportError
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    sys.path.insert(0, "tests")
    import numpy as np
    import test_imports
    from refdeblur import _engine
    results = test_imports.workload()
np.savez(sys.argv[1], **results)
print(json.dumps({
    "have_numba": _engine.HAVE_NUMBA,
    "numba_loaded": any(name.split(".")[0] in ("numba", "llvmlite")
                        for name, module in sys.modules.items() if module),
    "warnings": [f"{w.category.__name__}: {w.message}" for w in caught]}))
"""


def test_everything_runs_without_numba(tmp_path):
    saved = tmp_path / "without_numba.npz"
    result = _run_python(WITHOUT_NUMBA, args=[str(saved)])
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.splitlines()[-1])
    assert not report["have_numba"] and not report["numba_loaded"], report
    assert [w for w in report["warnings"] if "numba is unavailable" in w] == [
        w for w in report["warnings"] if "Warning" in w.split(":")[0]][:1], report["warnings"]
    without = np.load(saved)
    assert without["gradient_errors"].max() <= 1e-6, without["gradient_errors"]
    with_numba = workload()
    # The sampler gives the same bits and float64 agrees to rounding. The
    # estimate runs the float32 network, whose compiled tanh differs from
    # NumPy's by up to 4e-7 (observed: 5e-6 on the kernel).
    np.testing.assert_array_equal(without["kernel"], with_numba["kernel"])
    np.testing.assert_allclose(without["network_kernel"], with_numba["network_kernel"],
                               rtol=0, atol=1e-13)
    np.testing.assert_allclose(without["estimate"], with_numba["estimate"], rtol=0, atol=1e-4)
    np.testing.assert_allclose(without["latent"], with_numba["latent"], rtol=0, atol=1e-12)


def test_the_checks_see_what_they_look_for():
    assert find_cycles({"a": {"b": 0}, "b": {"c": 0}, "c": {"a": 0}, "d": {"a": 0}}) == [
        ["a", "b", "c"]]
    assert find_cycles({"a": {"b": 0}, "b": {}}) == []
    assert _resolve("refdeblur.layers.conv2d", False, "_engine", 2) == "refdeblur._engine"
    assert _resolve("refdeblur.layers", True, "base", 1) == "refdeblur.layers.base"
    collector = _Collector("refdeblur.layers.tanh", "tanh.py", False)
    collector.visit(ast.parse(textwrap.dedent("""
        from .. import _engine as engine
        from .._engine.threads import _pool, elementwise
        def f():
            import numba
            return engine._warned
    """)))
    found = {(item.target, item.name, item.local) for item in collector.imports}
    assert found == {("refdeblur._engine", "", False),
                     ("refdeblur._engine.threads", "_pool", False),
                     ("refdeblur._engine.threads", "elementwise", False),
                     ("numba", "", True)}
    assert collector.private_reads == [(6, "refdeblur._engine", "_warned")]
