"""Wheels unpacked into a deps tree (imagekit/build/unpack.py) as pip --target lays them out."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from imagekit.build.unpack import BadWheel, unpack_wheels

from .wheelfactory import make_wheel


def test_a_wheel_lands_as_pip_target_lays_it_out(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path / "wheels", "gamma", "1.0", extra={
        "gamma/cli.py": "def main():\n    print('gamma says hi')\n    return 0\n",
        "gamma-1.0.dist-info/entry_points.txt": "[console_scripts]\ngamma = gamma.cli:main\n",
        "gamma-1.0.data/scripts/gamma-tool": "#!python\nprint('tool')\n",
        "gamma-1.0.data/purelib/gamma_extra.py": "X = 1\n",
        "gamma-1.0.data/headers/gamma.h": "int x;\n",
    })
    tree = tmp_path / "tree"
    unpack_wheels([wheel], tree)
    assert (tree / "gamma" / "__init__.py").is_file() and (tree / "gamma_extra.py").is_file()
    assert (tree / "gamma-1.0.dist-info" / "METADATA").is_file()
    assert (tree / "include" / "gamma.h").is_file()
    tool = tree / "bin" / "gamma-tool"
    assert tool.read_text() == "#!/usr/bin/env python3\nprint('tool')\n" and os.access(tool, os.X_OK)
    launcher = tree / "bin" / "gamma"
    assert launcher.read_text().startswith("#!/usr/bin/env python3\n") and os.access(launcher, os.X_OK)
    assert not list(tree.rglob("__pycache__"))  # nothing compiled
    result = subprocess.run([sys.executable, str(launcher)], env={**os.environ, "PYTHONPATH": str(tree)},
                            capture_output=True, text=True, check=True)
    assert result.stdout == "gamma says hi\n"


def test_a_member_outside_the_tree_is_refused(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path / "wheels", "evil", "1.0", extra={"../outside.py": "x = 1\n"})
    with pytest.raises(BadWheel, match="outside"):
        unpack_wheels([wheel], tmp_path / "tree")
    assert not (tmp_path / "outside.py").exists()
