"""A deps layer written straight from the wheels (imagekit/build/wheeltree.py) is byte for byte the layer
written from the tree unpack.py lays out: same files, modes, sizes, directories and ignored names."""
from __future__ import annotations

import tarfile
import zipfile
from pathlib import Path, PurePosixPath

from imagekit.build.sbom import installed_packages
from imagekit.build.tarball import Mapping, tree_size, write_layer
from imagekit.build.unpack import unpack_wheels
from imagekit.build.wheels import strip_caches
from imagekit.build.wheeltree import WheelTree

from .wheelfactory import make_wheel

TARGET = PurePosixPath("/opt/imagekit/deps/s")


def with_executable(wheel: Path, member: str, content: str) -> Path:
    """wheel with one more member whose zip entry carries an execute bit (as native tools' do)."""
    with zipfile.ZipFile(wheel, "a") as archive:
        info = zipfile.ZipInfo(member, (1980, 1, 1, 0, 0, 0))
        info.external_attr = 0o100755 << 16
        archive.writestr(info, content)
    return wheel


def wheels(directory: Path) -> list[Path]:
    gamma = make_wheel(directory, "gamma", "1.0", extra={
        "gamma/cli.py": "def main():\n    return 0\n",
        "gamma-1.0.dist-info/entry_points.txt": "[console_scripts]\ngamma = gamma.cli:main\n",
        "gamma-1.0.data/scripts/gamma-tool": "#!python\nprint('tool')\n",
        "gamma-1.0.data/purelib/gamma_extra.py": "X = 1\n",
        "gamma-1.0.data/headers/gamma.h": "int x;\n",
        "gamma-1.0.data/data/share/gamma/notes.txt": "notes\n",
        "gamma/__pycache__/cli.cpython-311.pyc": "compiled",  # ignored, as its directory
        "gamma/stale.pyc": "compiled",  # ignored file ...
        "gamma/only_caches/x.pyc": "compiled",  # ... whose directory stays (empty)
        "gamma/.DS_Store": "litter",
        "gamma/tests/data.bin": "\x00\x01",
        "shared/common.py": "FROM = 'gamma'\n",
    })
    with_executable(gamma, "gamma/native-helper", "#!/bin/sh\necho hi\n")
    # A later wheel's file wins over an earlier one's, as it would when unpacked over it.
    delta = make_wheel(directory, "delta", "2.0", licence=("License", "MIT"),
                       extra={"shared/common.py": "FROM = 'delta, longer than gamma'\n"})
    return [gamma, delta]


def test_the_layer_from_the_wheels_is_the_layer_from_the_unpacked_tree(tmp_path: Path) -> None:
    made = wheels(tmp_path / "wheels")
    tree = tmp_path / "tree"
    unpack_wheels(made, tree)
    strip_caches(tree)
    from_tree = write_layer([Mapping(tree, TARGET)], tmp_path / "from-tree.tar")
    described = WheelTree("key", tuple(made))
    from_wheels = write_layer([Mapping(described, TARGET)], tmp_path / "from-wheels.tar")

    assert from_wheels.sha256 == from_tree.sha256
    assert (tmp_path / "from-wheels.tar").read_bytes() == (tmp_path / "from-tree.tar").read_bytes()
    assert from_wheels.size == from_tree.size == tree_size(tree) == tree_size(described) == described.size()
    # What it holds, seen from the tar: the rules above did apply (the test is not comparing two empty layers).
    with tarfile.open(tmp_path / "from-wheels.tar") as archive:
        members = {member.name: member for member in archive.getmembers()}
    base = "opt/imagekit/deps/s/"
    assert members[base + "bin/gamma-tool"].mode == 0o755 and members[base + "gamma/native-helper"].mode == 0o755
    assert members[base + "gamma/cli.py"].mode == 0o644 and members[base + "gamma/only_caches"].isdir()
    assert base + "gamma/stale.pyc" not in members and base + "gamma/__pycache__" not in members
    assert base + "gamma/.DS_Store" not in members and base + "share/gamma/notes.txt" in members
    with tarfile.open(tmp_path / "from-wheels.tar") as archive:
        common = archive.extractfile(base + "shared/common.py")
        assert common is not None and common.read() == b"FROM = 'delta, longer than gamma'\n"


def test_the_metadata_of_the_wheels_is_the_metadata_of_the_tree(tmp_path: Path) -> None:
    made = wheels(tmp_path / "wheels")
    tree = tmp_path / "tree"
    unpack_wheels(made, tree)
    described = WheelTree("key", tuple(made))
    on_disk = {info.name: (info / "METADATA").read_text() for info in sorted(tree.glob("*.dist-info"))}
    assert described.metadata() == on_disk
    packages = installed_packages(described.metadata().values(), ())
    assert [(package.name, package.version) for package in packages] == [("delta", "2.0"), ("gamma", "1.0")]
