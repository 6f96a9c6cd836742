"""supervisord's entry point, as the conductor starts it.

supervisor before 4.3 imports pkg_resources only to resolve `module:attr` specs
(`Options.import_spec`, for the rpcinterface factory). Importing pkg_resources scans
every installed distribution: about 10 MiB of resident memory in a process that stays
up for the whole run (Debian bookworm ships supervisor 4.2.5). Here the spec is
resolved with importlib instead; supervisor 4.3 and later do the same themselves.
"""
from __future__ import annotations

import importlib
import sys
import types
from typing import Any


def resolve_spec(spec: str) -> Any:
    """`package.module:attribute.path` -> the object."""
    module_name, _, attributes = spec.partition(":")
    resolved: Any = importlib.import_module(module_name.strip())
    for name in filter(None, attributes.strip().split(".")):
        resolved = getattr(resolved, name)
    return resolved


class EntryPoint:
    """The one piece of pkg_resources supervisor < 4.3 uses: EntryPoint.parse("x=spec").resolve()."""

    def __init__(self, spec: str) -> None:
        self.spec = spec

    @classmethod
    def parse(cls, text: str) -> EntryPoint:
        return cls(text.split("=", 1)[1])

    def resolve(self) -> Any:
        return resolve_spec(self.spec)


def install_pkg_resources_shim() -> None:
    if "pkg_resources" not in sys.modules:
        shim = types.ModuleType("pkg_resources", "imagekit: the part of pkg_resources supervisord uses")
        shim.EntryPoint = EntryPoint  # type: ignore[attr-defined]  # a module made here: no declared attributes
        sys.modules["pkg_resources"] = shim


def main() -> None:
    install_pkg_resources_shim()
    from supervisor.supervisord import main as supervisord_main

    supervisord_main()


if __name__ == "__main__":
    main()
