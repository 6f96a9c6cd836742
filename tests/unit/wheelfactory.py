"""Tiny pure-Python wheels made on the spot, served to pip from a directory: lock and SBOM tests
resolve and install real wheels without an index."""
from __future__ import annotations

import zipfile
from pathlib import Path


def make_wheel(directory: Path, name: str, version: str, *, requires: tuple[str, ...] = (),
               licence: tuple[str, str] | None = None, extra: dict[str, str] | None = None,
               tag: str = "py3-none-any") -> Path:
    """name-version-TAG.whl (py3-none-any unless a platform's tag is given): one module, METADATA with
    Requires-Dist and a licence field (licence: (METADATA field, value), e.g. ("License-Expression", "MIT"));
    extra: more members, path: text."""
    directory.mkdir(parents=True, exist_ok=True)
    dist_info = f"{name}-{version}.dist-info"
    metadata = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    metadata += [f"Requires-Dist: {requirement}" for requirement in requires]
    if licence:
        metadata.append(f"{licence[0]}: {licence[1]}")
    files = {
        f"{name}/__init__.py": f"VERSION = {version!r}\n",
        f"{dist_info}/METADATA": "\n".join(metadata) + "\n\n",
        f"{dist_info}/WHEEL": f"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: {tag}\n",
    }
    files.update(extra or {})
    files[f"{dist_info}/RECORD"] = "".join(f"{path},,\n" for path in [*files, f"{dist_info}/RECORD"])
    wheel = directory / f"{name}-{version}-{tag}.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, content in files.items():
            archive.writestr(zipfile.ZipInfo(path, (1980, 1, 1, 0, 0, 0)), content)
    return wheel
