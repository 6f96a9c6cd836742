"""The S3 client layer: boto3 and what it needs, only in images of pipelines that read or write s3 (spec.uses_s3).

    /opt/imagekit/s3/                       boto3, botocore, s3transfer, jmespath, python-dateutil, six, urllib3
    /opt/imagekit/sbom/s3-client.cdx.json   their SBOM

The wheels are pure Python, so one lock serves every base image: s3client.lock beside this module pins them
with sha256 hashes, made from s3client.txt by `python -m imagekit.build.s3client` (maintainers, when boto3
moves). A build fetches them on the host through the user's own pip (`--require-hashes`), unpacks them and
caches the tree by the lock, as it does a step's deps (deps.py); the layer is then the same bytes for every
pipeline, and sits right on the runtime base so that images share it. Only the runtime's source and sink
code puts the directory on its path (contract.IMAGE_S3_CLIENT_DIR): steps never see boto3.
"""
from __future__ import annotations

import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from imagekit_core import contract, proc
from imagekit_core.errors import CommandFailed, EnvironmentMissing, ImagekitError

from .deps import DepsTree, deps_work, install_locked
from .lock import Lock, format_lock, input_digest, wheel_pin
from .plan import SBOM_ROOT, PlannedLayer
from .sbom import cached_sbom, cyclonedx_json, installed_packages
from .tarball import Mapping
from .wheels import PythonTarget, pip_command

S3_CLIENT = "s3-client"  # the layer's name, and its SBOM's (s3-client.cdx.json)
IMAGE_DIR = PurePosixPath(contract.IMAGE_S3_CLIENT_DIR)
HERE = Path(__file__).resolve().parent
REQUIREMENTS = HERE / "s3client.txt"
LOCK = HERE / "s3client.lock"
PURE_WHEEL = "-none-any.whl"


@dataclass(frozen=True)
class ClientLayer:
    tree: DepsTree

    @property
    def mappings(self) -> tuple[Mapping, ...]:
        return (Mapping(self.tree.wheels, IMAGE_DIR), Mapping(self.tree.sbom, SBOM_ROOT))

    def planned(self) -> PlannedLayer:
        """Its layer in the plan: a deps layer of no step (a deps tarball, cached by its trees)."""
        return PlannedLayer(S3_CLIENT, "deps", (), self.mappings, self.tree.size)


def client_lock() -> Lock:
    return Lock(LOCK, LOCK.read_text())


def _failed(output: str) -> Exception:
    last = output.strip().splitlines()[-1] if output.strip() else "pip failed"
    return EnvironmentMissing(f"could not fetch the S3 client's wheels ({LOCK.name}: boto3 and its dependencies) "
                              f"through pip: {last} (fix: check your pip index configuration)")


def install_client(target: PythonTarget, *, refresh: bool = False) -> ClientLayer:
    """The S3 client's tree and SBOM, installed from the lock (cached by it)."""
    lock = client_lock()
    with deps_work() as work:
        tree = install_locked(S3_CLIENT, lock, target, work, refresh=refresh, failed=_failed)

    def make() -> str:
        return cyclonedx_json(S3_CLIENT, None, installed_packages(tree.metadata().values(), lock.pins),
                              f"imagekit's S3 client: the Python packages at {IMAGE_DIR}, for the runtime's sources and sinks")

    sbom = cached_sbom(S3_CLIENT, f"{tree.name}\0{lock.text}", make)
    return ClientLayer(DepsTree(S3_CLIENT, tree, lock, sbom))


def relock(target: PythonTarget) -> str:
    """Resolve s3client.txt again (pip, through the user's configuration) and return the new lock's text."""
    with tempfile.TemporaryDirectory(prefix="imagekit-s3client-") as wheels:
        try:
            proc.run([*pip_command(), "download", "--disable-pip-version-check", "--no-input", "--progress-bar", "off",
                      *target.pip_args(), "--dest", wheels, "-r", REQUIREMENTS])
        except CommandFailed as exc:
            raise _failed(exc.output) from None
        found = sorted(Path(wheels).glob("*.whl"))
        impure = [wheel.name for wheel in found if not wheel.name.endswith(PURE_WHEEL)]
        if impure:
            raise ImagekitError(f"{', '.join(impure)}: not pure Python, so one lock would not fit every base image")
        lines = format_lock(REQUIREMENTS, target, input_digest(REQUIREMENTS), [wheel_pin(w) for w in found]).split("\n")
        lines[2] = "# `python -m imagekit.build.s3client` refreshes it (pure wheels: it fits every base image)."
        return "\n".join(lines)


if __name__ == "__main__":  # python -m imagekit.build.s3client: write s3client.lock again
    LOCK.write_text(relock(PythonTarget(version=sys.argv[1] if len(sys.argv) > 1 else "3.11")))
    print(f"wrote {LOCK}")
