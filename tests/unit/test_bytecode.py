"""Bytecode compiled at build time (imagekit/build/bytecode.py): where it goes, what it says, and that the same
source gives the same bytes (a layer's digest depends on them)."""
from __future__ import annotations

import importlib.util
import marshal
import sys
import tarfile
from pathlib import Path, PurePosixPath

import pytest

from imagekit.build import bytecode
from imagekit.build.bytecode import Compiler, find_compiler
from imagekit.build.plan import tree_mappings
from imagekit.build.tarball import write_layer
from imagekit_core import contract

VERSION = f"{sys.version_info.major}.{sys.version_info.minor}"
TAG = sys.implementation.cache_tag
IMAGE_ROOT = PurePosixPath("/opt/imagekit/pipeline/steps/count")
SOURCE = 'WORDS = {"alpha", "beta", "gamma", "delta"}\n\ndef known(word):\n    return word in {"x", "y", "z"}\n'


@pytest.fixture
def compiler() -> Compiler:
    found = find_compiler(VERSION)
    assert found is not None, "this interpreter is a Python of its own version"
    return found


def step_package(root: Path) -> Path:
    (root / "lib").mkdir(parents=True)
    (root / "main.py").write_text(SOURCE)
    (root / "lib" / "__init__.py").write_text("")
    (root / "lib" / "broken.py").write_text("print 'python 2'\n")  # does not compile: left without bytecode
    (root / "lib" / "tests").mkdir()
    (root / "lib" / "tests" / "test_lib.py").write_text("def test(): pass\n")  # a test suite: left as it is
    (root / "run.sh").write_text("python3 main.py\n")
    return root


def test_every_module_gets_unchecked_hash_bytecode_with_the_image_path(tmp_path: Path, compiler: Compiler,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(contract.CACHE_DIR, str(tmp_path / "cache"))
    package = step_package(tmp_path / "count")
    compiled = compiler.compiled(package, IMAGE_ROOT)
    names = {str(relative) for relative, _ in compiled.files()}
    assert names == {f"__pycache__/main.{TAG}.pyc", f"lib/__pycache__/__init__.{TAG}.pyc"}
    data = (compiled.directory / "__pycache__" / f"main.{TAG}.pyc").read_bytes()
    assert data[:4] == importlib.util.MAGIC_NUMBER
    assert int.from_bytes(data[4:8], "little") == 0b01  # hash-based, not checked against the source
    assert data[8:16] == importlib.util.source_hash(SOURCE.encode())
    code = marshal.loads(data[16:])
    assert code.co_filename == str(IMAGE_ROOT / "main.py")
    assert not list(package.rglob("__pycache__")), "nothing is written into the step package"


def test_the_same_source_gives_the_same_bytes(tmp_path: Path, compiler: Compiler,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    results = []
    for attempt in ("one", "two"):
        monkeypatch.setenv(contract.CACHE_DIR, str(tmp_path / attempt / "cache"))
        package = step_package(tmp_path / attempt / "count")
        compiled = compiler.compiled(package, IMAGE_ROOT)
        results.append({str(relative): path.read_bytes() for relative, path in compiled.files()})
    assert results[0] == results[1]


def test_a_changed_source_or_place_is_compiled_again(tmp_path: Path, compiler: Compiler,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(contract.CACHE_DIR, str(tmp_path / "cache"))
    package = step_package(tmp_path / "count")
    first = compiler.compiled(package, IMAGE_ROOT)
    assert compiler.compiled(package, IMAGE_ROOT) == first  # from the cache
    assert compiler.compiled(package, IMAGE_ROOT.parent / "other").name != first.name
    monkeypatch.setattr(bytecode, "BYTECODE_FORMAT", bytecode.BYTECODE_FORMAT + "-next")
    assert compiler.compiled(package, IMAGE_ROOT).name != first.name  # a new way to compile: nothing reused
    monkeypatch.undo()
    monkeypatch.setenv(contract.CACHE_DIR, str(tmp_path / "cache"))
    (package / "main.py").write_text(SOURCE + "EXTRA = 1\n")
    assert compiler.compiled(package, IMAGE_ROOT).name != first.name


def test_no_python_of_another_version_is_found() -> None:
    assert find_compiler("2.7") is None
    assert find_compiler(VERSION, "pypy") is None


def test_a_code_layer_holds_the_bytecode_beside_its_sources_only_when_asked(tmp_path: Path, compiler: Compiler,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(contract.CACHE_DIR, str(tmp_path / "cache"))
    package = step_package(tmp_path / "count")
    with_bytecode = write_layer(tree_mappings(package, IMAGE_ROOT, compiler), tmp_path / "with.tar")
    without = write_layer(tree_mappings(package, IMAGE_ROOT, None), tmp_path / "without.tar")
    with tarfile.open(with_bytecode.path) as tar:
        members = {member.name: member for member in tar.getmembers()}
    pyc = f"opt/imagekit/pipeline/steps/count/__pycache__/main.{TAG}.pyc"
    assert members[pyc].mode == 0o644 and members[pyc].uid == 0
    assert members[pyc.rsplit("/", 1)[0]].isdir()
    with tarfile.open(without.path) as tar:
        assert not [name for name in tar.getnames() if "__pycache__" in name]
    again = write_layer(tree_mappings(package, IMAGE_ROOT, compiler), tmp_path / "again.tar")
    assert again.sha256 == with_bytecode.sha256
