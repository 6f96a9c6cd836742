"""CycloneDX 1.5 JSON SBOMs (cyclonedx-python-lib): one per step's deps tree, one for the runtime base.

A step's SBOM lists every distribution installed in its deps tree (its `*.dist-info`), with the
version and licence from the distribution's own metadata and the sha256 of the wheel it came from
(from the step's lock). It lives at /opt/imagekit/sbom/<step>.cdx.json, in the step's deps layer;
the runtime base's (imagekit_runtime, and supervisor/pyyaml when imagekit installed them) at
/opt/imagekit/sbom/runtime.cdx.json. The documents are deterministic (serial number derived
from the content, the layers' fixed time as timestamp), so an SBOM never changes a layer's digest
by itself.
"""
from __future__ import annotations

import datetime
import email.parser
import hashlib
import json
import os
import uuid
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from email.message import Message
from pathlib import Path

from imagekit_core.cachedir import cache_root

from .lock import Pin, normalise_name
from .tarball import FIXED_MTIME

RUNTIME_SBOM = "runtime"  # the runtime base's SBOM: runtime.cdx.json
SBOM_SUFFIX = ".cdx.json"
SBOM_FORMAT = "2"  # bump when the documents change


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    licences: tuple[str, ...]  # SPDX expression, licence names, or classifier names
    sha256: tuple[str, ...]  # of the wheel(s) it is installed from


def sbom_file(name: str) -> str:
    return f"{name}{SBOM_SUFFIX}"


def _licences(metadata: Message) -> tuple[str, ...]:
    """License-Expression (PEP 639), else a one-line License field, else the licence classifiers."""
    expression = (metadata.get("License-Expression") or "").strip()
    if expression:
        return (expression,)
    field = (metadata.get("License") or "").strip()
    if field and "\n" not in field and len(field) <= 100:
        return (field,)
    classifiers = [value.rsplit("::", 1)[-1].strip() for value in metadata.get_all("Classifier") or ()
                   if value.startswith("License ::") and value.count("::") >= 2]
    return tuple(sorted(set(classifiers)))


def _package(metadata: Message, hashes: dict[str, tuple[str, ...]]) -> Package:
    name = str(metadata.get("Name", "")).strip()
    return Package(name=name, version=str(metadata.get("Version", "")).strip(), licences=_licences(metadata),
                   sha256=hashes.get(normalise_name(name), ()))


def installed_packages(metadata: Iterable[str], pins: Iterable[Pin]) -> list[Package]:
    """Every distribution of a deps tree, from the METADATA of each (wheeltree.WheelTree.metadata)."""
    hashes = {pin.name: pin.hashes for pin in pins}
    parser = email.parser.Parser()
    packages = [_package(parser.parsestr(text), hashes) for text in metadata]
    return sorted(packages, key=lambda package: normalise_name(package.name))


def wheel_packages(wheels: Iterable[Path]) -> list[Package]:
    """The distributions in wheel files (the runtime base unpacks them), with each wheel's sha256."""
    parser = email.parser.BytesParser()
    packages = []
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as archive:
            name = next(item for item in archive.namelist() if item.endswith(".dist-info/METADATA"))
            metadata = parser.parsebytes(archive.read(name))
        digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
        packages.append(_package(metadata, {normalise_name(str(metadata.get("Name", ""))): (digest,)}))
    return sorted(packages, key=lambda package: normalise_name(package.name))


def cyclonedx_json(subject: str, version: str | None, packages: list[Package], description: str) -> str:
    """One CycloneDX 1.5 JSON document: subject (a step, or the runtime) depends on every package."""
    try:
        from cyclonedx.contrib.license.factories import LicenseFactory
    except ImportError:  # cyclonedx-python-lib before 11.1
        from cyclonedx.factory.license import LicenseFactory
    from cyclonedx.model import HashAlgorithm, HashType
    from cyclonedx.model.bom import Bom, BomMetaData
    from cyclonedx.model.component import Component, ComponentType
    from cyclonedx.output.json import JsonV1Dot5
    from packageurl import PackageURL

    licences = LicenseFactory()
    components = []
    for package in packages:
        purl = PackageURL(type="pypi", name=normalise_name(package.name), version=package.version)
        components.append(Component(
            name=package.name, version=package.version, type=ComponentType.LIBRARY, purl=purl,
            bom_ref=purl.to_string(),
            hashes=[HashType(alg=HashAlgorithm.SHA_256, content=value) for value in package.sha256],
            licenses=[licences.make_from_string(value) for value in package.licences]))
    root = Component(name=subject, version=version, type=ComponentType.APPLICATION, bom_ref=f"imagekit:{subject}",
                     description=description)
    material = json.dumps([subject, version, description, [vars(package) for package in packages]], sort_keys=True)
    bom = Bom(serial_number=uuid.uuid5(uuid.NAMESPACE_URL, f"imagekit-sbom:{material}"),
              metadata=BomMetaData(component=root,
                                   timestamp=datetime.datetime.fromtimestamp(FIXED_MTIME, tz=datetime.UTC)))
    for component in components:
        bom.components.add(component)
    bom.register_dependency(root, components)
    # Sorted keys, fixed indentation: the same packages always give the same bytes.
    return json.dumps(json.loads(JsonV1Dot5(bom).output_as_string()), indent=2, sort_keys=True) + "\n"


def cached_sbom(name: str, source: str, make: Callable[[], str]) -> Path:
    """A directory holding <name>.cdx.json, in the imagekit cache by what it describes (source: a deps
    tree's key, or the runtime's wheels), so a build that changes no dependency makes none (a layer maps it)."""
    key = hashlib.sha256(f"{SBOM_FORMAT}\0{name}\0{source}".encode()).hexdigest()[:24]
    directory = cache_root() / "sbom" / key
    if not (directory / sbom_file(name)).is_file():
        document = make()
        directory.mkdir(parents=True, exist_ok=True)
        temporary = directory / f".{sbom_file(name)}.{os.getpid()}"
        temporary.write_text(document)
        os.replace(temporary, directory / sbom_file(name))
    return directory
