"""The files of a step (imagekit_runtime/stepfiles.py), in process: the step's content key and its
code layer tarball see the same files, so a change moves both or neither."""
from __future__ import annotations

import os
import tarfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath

import pytest

from imagekit.build.tarball import Mapping, write_layer
from imagekit_core.spec import StepSpec
from imagekit_core.spec.stepfiles import ignored_dir, ignored_file, walk

TARGET = PurePosixPath("/opt/imagekit/pipeline/steps/tokenize")
KEPT = ["step.yaml", "main.py", "run.sh", "lib/util.py", "lib/data/table.csv", "empty", "link"]
IGNORED = [
    ".git/HEAD", ".hg/store", ".svn/entries", "__pycache__/main.cpython-311.pyc", "lib/__pycache__/util.pyc",
    ".venv/bin/python", ".mypy_cache/x", ".pytest_cache/v", "main.pyc", "main.pyo", ".DS_Store",
    "lib/.DS_Store", ".main.py.swp", "main.py~", ".#main.py", "#main.py#",
]


@pytest.fixture()
def package(tmp_path: Path) -> Path:
    """A step directory holding files a step is made of, and files no step is made of."""
    directory = tmp_path / "tokenize"
    for name in [n for n in KEPT if n not in ("empty", "link")] + IGNORED:
        (directory / name).parent.mkdir(parents=True, exist_ok=True)
        (directory / name).write_text(f"content of {name}\n")
    (directory / "run.sh").chmod(0o755)
    (directory / "empty").mkdir()
    (directory / "link").symlink_to("lib/util.py")
    return directory


def _step(directory: Path) -> StepSpec:
    return StepSpec(name="tokenize", directory=directory, command=("python3", "main.py"))


def _layer(directory: Path, destination: Path) -> tuple[str, set[str]]:
    """The layer's digest and its entries below the step's directory, relative to it."""
    layer = write_layer([Mapping(directory, TARGET)], destination)
    with tarfile.open(layer.path) as tar:
        names = {PurePosixPath("/" + member.name) for member in tar.getmembers()}
    return layer.sha256, {name.relative_to(TARGET).as_posix() for name in names if TARGET in name.parents}


def _kept_with_parents() -> set[str]:
    return set(KEPT) | {"lib", "lib/data"}


def test_the_layer_holds_exactly_the_files_the_key_hashes(package: Path, tmp_path: Path) -> None:
    hashed = {entry.relative.as_posix() for entry in walk(package)}
    _, layered = _layer(package, tmp_path / "layer.tar")
    assert hashed == layered == _kept_with_parents()


@pytest.mark.parametrize("name", IGNORED)
def test_touching_an_ignored_file_changes_neither_key_nor_layer(package: Path, tmp_path: Path, name: str) -> None:
    key_before = _step(package).content_hash()
    layer_before, _ = _layer(package, tmp_path / "before.tar")
    (package / name).write_text("changed\n")
    assert _step(package).content_hash() == key_before
    assert _layer(package, tmp_path / "after.tar")[0] == layer_before


def _edit(package: Path) -> None:
    (package / "lib/util.py").write_text("changed\n")


def _make_executable(package: Path) -> None:
    (package / "main.py").chmod(0o755)


def _retarget_link(package: Path) -> None:
    (package / "link").unlink()
    (package / "link").symlink_to("main.py")


def _add_empty_directory(package: Path) -> None:
    (package / "lib/more").mkdir()


def _rename(package: Path) -> None:
    os.rename(package / "lib/data/table.csv", package / "lib/data/table2.csv")


@pytest.mark.parametrize("change", [_edit, _make_executable, _retarget_link, _add_empty_directory, _rename])
def test_a_change_to_a_kept_entry_changes_both_key_and_layer(package: Path, tmp_path: Path,
                                                            change: Callable[[Path], None]) -> None:
    key_before = _step(package).content_hash()
    layer_before, _ = _layer(package, tmp_path / "before.tar")
    change(package)
    assert _step(package).content_hash() != key_before
    assert _layer(package, tmp_path / "after.tar")[0] != layer_before


@pytest.mark.parametrize(("name", "ignored"), [
    ("main.pyc", True), ("x.pyo", True), (".DS_Store", True), ("Thumbs.db", True), (".a.swp", True),
    ("notes~", True), (".#main.py", True), ("#main.py#", True),
    ("main.py", False), ("#", False), ("data.pycx", False), (".env", False), ("swp", False),
])
def test_which_file_names_are_not_part_of_a_package(name: str, ignored: bool) -> None:
    assert ignored_file(name) is ignored


@pytest.mark.parametrize(("name", "ignored"), [
    (".git", True), (".hg", True), (".svn", True), ("__pycache__", True), (".venv", True),
    ("lib", False), ("git", False), ("venv", False), (".github", False),
])
def test_which_directory_names_are_not_part_of_a_package(name: str, ignored: bool) -> None:
    assert ignored_dir(name) is ignored
