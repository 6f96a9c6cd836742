"""The four packages keep their boundaries.

imagekit_core is the vocabulary the others share (spec, contract, errors, references, label names, flags as
data): it imports the standard library and pyyaml only (the docker SDK inside engine.py's functions), and none
of the other three. imagekit_runtime ships inside images with it: it imports the standard library,
supervisor, pyyaml and imagekit_core, never imagekit or imagekit_deploy; prometheus_client only in metrics.py,
and only when metrics are served; boto3 and botocore only in transfer/s3.py, the code of the S3 source and
sink steps (from the image's s3 layer). imagekit_deploy imports nothing of imagekit (the build toolkit and
CLI): what it shares with the build is in imagekit_core.

Inside imagekit_runtime, sub-packages are layered (docs/architecture.md): the runtime's own shared modules at
its top level (states, layout, locations, keys) at the bottom; `data`
(a step's data in shm) above them; `checkpoint` above `data`; `observe` and `transfer` beside them;
`supervise` above `observe`; `run`, the conductor, above all of them; `main` the entrypoint. No
sub-package imports one above it, so no import cycle exists between them. `step`, the public API that
step code imports, uses only the contract.

Checked twice: statically, every import statement of every module (relative ones resolved, imports inside
functions included); and dynamically, importing every module in a fresh interpreter and looking at what
got loaded.
"""
from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
RUNTIME = REPO / "runtime" / "imagekit_runtime"
DEPLOY = REPO / "deploy" / "imagekit_deploy"

RUNTIME_THIRD_PARTY = {"supervisor", "yaml", "_yaml"}  # _yaml: pyyaml's C extension
OPTIONAL_IN_STEP_HELPER = {"numpy"}  # imported by imagekit_runtime.step inside functions, when a step has it
OPTIONAL_FOR_METRICS = {"prometheus_client"}  # imported by imagekit_runtime.metrics inside functions, for --metrics
S3_CLIENT = {"boto3", "botocore"}  # imported by imagekit_runtime.transfer.s3 only: S3 sources and sinks
S3_MODULE = "imagekit_runtime.transfer.s3"
CORE = REPO / "core" / "imagekit_core"
NEVER_IN_RUNTIME = ("imagekit", "imagekit_deploy", "docker", "typer", "rich", "requests", "jsonschema")
NEVER_IN_DEPLOY = ("imagekit", "typer", "rich")
CORE_THIRD_PARTY = {"yaml", "_yaml"}
DOCKER_IN_CORE = ("docker", "imagekit_core.engine")  # the SDK, imported inside engine.py's functions


SHARED = {"states", "layout", "locations", "keys"}
LAYERS: dict[str, set[str]] = {  # sub-package (or top-level module) -> what of imagekit_runtime it may import
    **{shared: SHARED for shared in SHARED},
    "data": SHARED,
    "checkpoint": SHARED | {"data"},
    "observe": SHARED,
    "transfer": SHARED,
    "supervise": SHARED | {"observe"},
    "run": SHARED | {"data", "checkpoint", "observe", "transfer", "supervise"},
    "step": set(),
}


@dataclass(frozen=True)
class Import:
    module: str  # the importing module
    line: int
    target: str  # dotted name imported; for `from a import b`, "a.b" (b may be a module or a name in a)

    def __str__(self) -> str:
        return f"{self.module}:{self.line} imports {self.target}"


def module_name(path: Path, package_root: Path) -> str:
    parts = list(path.relative_to(package_root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, package_root: Path) -> list[Import]:
    """Every import statement in the file, relative imports resolved against the file's package."""
    name = module_name(path, package_root)
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found: list[Import] = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [Import(name, node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                source = ".".join([*base, *([node.module] if node.module else [])])
            else:
                source = node.module or ""
            found += [Import(name, node.lineno, f"{source}.{alias.name}") for alias in node.names]
    return found


def all_imports(package_root: Path) -> list[Import]:
    return [found for path in sorted(package_root.rglob("*.py")) for found in imports_of(path, package_root)]


def under(target: str, prefix: str) -> bool:
    return target == prefix or target.startswith(prefix + ".")


def runtime_violations(imports: list[Import]) -> list[str]:
    bad = []
    for found in imports:
        top = found.target.split(".")[0]
        if top == "__future__" or top in sys.stdlib_module_names or \
                top in RUNTIME_THIRD_PARTY | {"imagekit_runtime", "imagekit_core"}:
            continue
        if top in OPTIONAL_IN_STEP_HELPER and found.module == "imagekit_runtime.step":
            continue
        if top in OPTIONAL_FOR_METRICS and found.module == "imagekit_runtime.observe.metrics":
            continue
        if top in S3_CLIENT and found.module == S3_MODULE:
            continue
        bad.append(str(found))
    return bad


def layer_violations(imports: list[Import]) -> list[str]:
    """Imports of a runtime sub-package (or shared module) that reach one above it (LAYERS)."""
    bad = []
    for found in imports:
        importer = found.module.split(".")[1] if "." in found.module else ""
        if not under(found.target, "imagekit_runtime") or importer not in LAYERS:
            continue
        target = found.target.split(".")[1] if found.target.count(".") else ""
        if target and target != importer and target not in LAYERS[importer]:
            bad.append(str(found))
    return bad


def deploy_violations(imports: list[Import]) -> list[str]:
    return [str(found) for found in imports if under(found.target, "imagekit")]


def core_violations(imports: list[Import]) -> list[str]:
    bad = []
    for found in imports:
        top = found.target.split(".")[0]
        if top == "__future__" or top in sys.stdlib_module_names or top in CORE_THIRD_PARTY | {"imagekit_core"}:
            continue
        if top == DOCKER_IN_CORE[0] and found.module == DOCKER_IN_CORE[1]:
            continue
        bad.append(str(found))
    return bad


def test_the_import_scanner_resolves_relative_and_nested_imports(tmp_path: Path) -> None:
    package = tmp_path / "imagekit_runtime"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("from .spec import load\n")
    (package / "sub" / "__init__.py").write_text("")
    (package / "sub" / "mod.py").write_text(
        "import os, yaml\nfrom .. import errors\nfrom ..spec import x\nfrom . import sibling\n"
        "def later():\n    from imagekit.build import plan\n    import imagekit_deploy.pod\n")
    assert [str(found) for found in all_imports(package)] == [
        "imagekit_runtime:1 imports imagekit_runtime.spec.load",
        "imagekit_runtime.sub.mod:1 imports os",
        "imagekit_runtime.sub.mod:1 imports yaml",
        "imagekit_runtime.sub.mod:2 imports imagekit_runtime.errors",
        "imagekit_runtime.sub.mod:3 imports imagekit_runtime.spec.x",
        "imagekit_runtime.sub.mod:4 imports imagekit_runtime.sub.sibling",
        "imagekit_runtime.sub.mod:6 imports imagekit.build.plan",
        "imagekit_runtime.sub.mod:7 imports imagekit_deploy.pod",
    ]
    assert runtime_violations(all_imports(package)) == [
        "imagekit_runtime.sub.mod:6 imports imagekit.build.plan",
        "imagekit_runtime.sub.mod:7 imports imagekit_deploy.pod",
    ]
    deploy = [Import("imagekit_deploy.x", 1, target) for target in
              ("imagekit_core.references.Reference", "imagekit.build.plan", "imagekit.cli", "imagekit_runtime.spec",
               "imagekit_coreextra")]
    assert deploy_violations(deploy) == ["imagekit_deploy.x:1 imports imagekit.build.plan",
                                         "imagekit_deploy.x:1 imports imagekit.cli"]
    core = [Import("imagekit_core.spec.load", 1, "yaml"), Import("imagekit_core.engine", 2, "docker.errors"),
            Import("imagekit_core.labels", 3, "docker"), Import("imagekit_core.spec", 4, "imagekit_runtime.keys")]
    assert core_violations(core) == ["imagekit_core.labels:3 imports docker",
                                     "imagekit_core.spec:4 imports imagekit_runtime.keys"]


def test_runtime_imports_only_stdlib_supervisor_and_pyyaml() -> None:
    imports = all_imports(RUNTIME)
    assert len({found.module for found in imports}) >= 20  # the scan did see the package
    assert runtime_violations(imports) == []


def test_runtime_sub_packages_import_only_downward() -> None:
    imports = all_imports(RUNTIME)
    assert layer_violations(imports) == []
    assert sorted(path.name for path in RUNTIME.iterdir() if path.is_dir() and path.name != "__pycache__") == \
        sorted(set(LAYERS) - SHARED - {"step"})  # every sub-package has its rule
    upward = [Import("imagekit_runtime.data.commits", 1, "imagekit_runtime.run.conductor.Conductor"),
              Import("imagekit_runtime.layout", 2, "imagekit_runtime.observe.journal"),
              Import("imagekit_runtime.step", 3, "imagekit_runtime.states.StepState"),
              Import("imagekit_runtime.run.conductor", 4, "imagekit_runtime.data.commits.Commits")]
    assert layer_violations(upward) == [str(found) for found in upward[:3]]


def import_cycles(imports: list[Import]) -> list[list[str]]:
    """Cycles among the modules the imports are of (an import of a name counts as one of its module)."""
    modules = {found.module for found in imports}
    edges: dict[str, set[str]] = {module: set() for module in modules}
    for found in imports:
        target = found.target if found.target in modules else found.target.rpartition(".")[0]
        if target in modules and target != found.module:
            edges[found.module].add(target)
    cycles: list[list[str]] = []
    state: dict[str, int] = {}
    trail: list[str] = []

    def visit(module: str) -> None:
        state[module] = 1
        trail.append(module)
        for target in sorted(edges[module]):
            if state.get(target) == 1:
                cycles.append([*trail[trail.index(target):], target])
            elif target not in state:
                visit(target)
        trail.pop()
        state[module] = 2
    for module in sorted(modules):
        if module not in state:
            visit(module)
    return cycles


def test_no_import_cycle_in_any_package_not_even_through_a_lazy_import() -> None:
    imports = [*all_imports(RUNTIME), *all_imports(DEPLOY), *all_imports(REPO / "imagekit"), *all_imports(CORE)]
    assert import_cycles(imports) == []
    looped = [Import("a.x", 1, "a.y.f"), Import("a.y", 1, "a.z"), Import("a.z", 9, "a.x.g")]  # 9: inside a function
    assert import_cycles(looped) == [["a.x", "a.y", "a.z", "a.x"]]


def test_core_imports_none_of_the_others() -> None:
    imports = all_imports(CORE)
    assert len({found.module for found in imports}) >= 10  # the scan did see the package
    assert core_violations(imports) == []


def test_deploy_imports_no_build_module() -> None:
    imports = all_imports(DEPLOY)
    assert any(under(found.target, "imagekit_runtime") for found in imports)  # the scan did see the package
    assert deploy_violations(imports) == []


# ------------------------------------------------------------------ dynamic

LOADED = """
import importlib, json, pkgutil, sys
before = set(sys.modules)
package = importlib.import_module(sys.argv[1])
names = [info.name for info in pkgutil.walk_packages(package.__path__, package.__name__ + ".")]
for name in names:
    if name.rsplit(".", 1)[-1] != "__main__" and name not in sys.argv[2:]:  # running it is not importing it
        importlib.import_module(name)
print(json.dumps({"modules": names, "loaded": sorted(set(sys.modules) - before)}))
"""


def import_everything(package: str, path: list[Path], *skip: str) -> tuple[list[str], list[str]]:
    """In a fresh interpreter with only `path` in front: the package's modules, and every module that got loaded
    (importing all but `skip`)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(str(p) for p in path)}
    completed = subprocess.run([sys.executable, "-c", LOADED, package, *skip], capture_output=True, text=True, env=env,
                               timeout=120, cwd=path[0])
    assert completed.returncode == 0, completed.stderr
    result = json.loads(completed.stdout)
    return result["modules"], result["loaded"]


def test_importing_all_of_the_runtime_loads_nothing_of_the_toolkit() -> None:
    modules, loaded = import_everything("imagekit_runtime", [REPO / "runtime", REPO / "core"], S3_MODULE)
    assert "imagekit_runtime.run.conductor" in modules and "imagekit_runtime.supervise.supervisord" in modules
    assert S3_MODULE in modules and "imagekit_runtime.run.transfers" in modules  # all but the s3 client's user
    assert [name for name in loaded if any(under(name, never) for never in NEVER_IN_RUNTIME)] == []
    tops = {name.split(".")[0] for name in loaded}
    foreign = tops - set(sys.stdlib_module_names) - RUNTIME_THIRD_PARTY - {"imagekit_runtime", "imagekit_core"}
    # Cython registers its own runtime modules when pyyaml's C extension loads.
    assert sorted(name for name in foreign if not name.startswith(("_cython_", "cython_runtime"))) == []
    assert {"imagekit_runtime", "yaml"} <= tops


def test_importing_all_of_deploy_loads_no_build_module() -> None:
    modules, loaded = import_everything("imagekit_deploy", [REPO / "deploy", REPO / "runtime", REPO / "core", REPO])
    assert "imagekit_deploy.emulator.engine" in modules
    assert [name for name in loaded if any(under(name, never) for never in NEVER_IN_DEPLOY)] == []


@pytest.mark.parametrize("package", ["imagekit_runtime", "imagekit_deploy", "imagekit_core"])
def test_the_dynamic_check_imports_this_checkout(package: str) -> None:
    code = f"import {package}; print({package}.__file__)"
    path = os.pathsep.join(str(p) for p in (REPO / "runtime", REPO / "deploy", REPO / "core", REPO))
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                               env={**os.environ, "PYTHONPATH": path})
    assert Path(completed.stdout.strip()).is_relative_to(REPO), completed.stdout + completed.stderr
