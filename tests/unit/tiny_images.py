"""Tiny images for reading indexes back: per platform, two uncompressed one-file layers (the runtime's SBOM, and
step `count`'s deps layer with its SBOM naming a package whose version says the platform), a config of that
platform carrying imagekit's layer labels; pushed with RegistryClient and joined by push_index, as
`build --platform A,B --push` does. MemoryRegistry is a registry in this process (the Distribution API's
uploads, manifests and blobs, kept in dicts) for the unit tests; the same pushes go to the real one."""
from __future__ import annotations

import hashlib
import http.server
import io
import json
import re
import tarfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imagekit.build.labels import layer_labels
from imagekit.build.plan import SBOM_ROOT
from imagekit.publish.index_push import PublishedIndex, push_index
from imagekit.publish.publisher import Published
from imagekit.publish.registry import RegistryClient
from imagekit_core.labels import PIPELINE_LABEL, STEPS_LABEL
from imagekit_core.platforms import Platform

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def count_version(platform: Platform) -> str:
    """The version of the package step count's SBOM lists in platform's image: tells the platforms apart."""
    return {"amd64": "1.0.0", "arm64": "2.0.0"}[platform.architecture]


def _tar(path: str, content: bytes) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        member = tarfile.TarInfo(path.lstrip("/"))
        member.size = len(content)
        archive.addfile(member, io.BytesIO(content))
    return buffer.getvalue()


def _sbom(name: str, platform: Platform, packages: dict[str, str]) -> bytes:
    return json.dumps({"bomFormat": "CycloneDX", "specVersion": "1.5",
                       "metadata": {"component": {"name": name, "version": str(platform)}},
                       "components": [{"name": package, "version": version} for package, version in packages.items()]
                       }).encode()


@dataclass(frozen=True)
class TinyImage:
    config: bytes
    layers: tuple[bytes, ...]
    manifest: bytes

    @property
    def digest(self) -> str:
        return digest_of(self.manifest)


def tiny_image(platform: Platform) -> TinyImage:
    """Two layers, runtime and deps-count, and a config of platform naming them in imagekit's labels."""
    layers = (_tar(str(SBOM_ROOT / "runtime.cdx.json"), _sbom("imagekit-runtime", platform, {})),
              _tar(str(SBOM_ROOT / "count.cdx.json"), _sbom("count", platform, {"tinypkg": count_version(platform)})))
    diff_ids = [digest_of(layer) for layer in layers]
    laid_out: list[dict[str, object]] = [
        {"digest": diff_ids[0], "kind": "runtime", "name": "runtime", "steps": []},
        {"digest": diff_ids[1], "kind": "deps", "name": "deps-count", "steps": ["count"]}]
    labels = {PIPELINE_LABEL: "tiny", STEPS_LABEL: "count", **layer_labels(laid_out, 0, (), ["count"])}
    config = json.dumps({"architecture": platform.architecture, "os": platform.os, "created": "1970-01-01T00:00:00Z",
                         "config": {"Labels": labels, "User": "1000", "Entrypoint": ["true"]},
                         "rootfs": {"type": "layers", "diff_ids": diff_ids}}, sort_keys=True).encode()
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": digest_of(config), "size": len(config)},
        "layers": [{"mediaType": OCI_LAYER, "digest": digest_of(layer), "size": len(layer)} for layer in layers],
    }, sort_keys=True).encode()
    return TinyImage(config, layers, manifest)


def push_image(host: str, repository: str, tag: str, platform: Platform, work: Path) -> Published:
    """platform's tiny image under tag, its blobs uploaded whole."""
    client = RegistryClient(host)
    image = tiny_image(platform)
    for blob in (image.config, *image.layers):
        path = work / digest_of(blob).removeprefix("sha256:")
        path.write_bytes(blob)
        client.upload(repository, digest_of(blob), path)
    digest = client.put_manifest(repository, tag, image.manifest, OCI_MANIFEST)
    return Published(reference=f"{host}/{repository}:{tag}@{digest}", digest=digest, layers=(), seconds=0.0)


def push_tiny_index(host: str, repository: str, tag: str, platforms: tuple[Platform, ...], work: Path) -> PublishedIndex:
    """Each platform's tiny image under TAG-<architecture>, then the OCI index of them under tag."""
    pushed = {platform: push_image(host, repository, f"{tag}-{platform.architecture}", platform, work)
              for platform in platforms}
    return push_index(f"{host}/{repository}:{tag}", pushed)


def docker_list(images: dict[Platform, TinyImage]) -> bytes:
    """A Docker manifest list over images (pushed already), as `docker manifest push` writes one."""
    return json.dumps({"schemaVersion": 2, "mediaType": DOCKER_LIST, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": image.digest, "size": len(image.manifest),
         "platform": {"architecture": platform.architecture, "os": platform.os}}
        for platform, image in images.items()]}).encode()


@dataclass
class MemoryRegistry:
    """The Distribution API's uploads, manifests (by tag and digest) and blobs, in this process, over plain HTTP."""

    blobs: dict[str, bytes] = field(default_factory=dict)
    manifests: dict[str, tuple[bytes, str]] = field(default_factory=dict)  # repository:reference -> body, type
    server: http.server.ThreadingHTTPServer | None = None

    @property
    def host(self) -> str:
        assert self.server is not None
        return f"127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> http.server.ThreadingHTTPServer:
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        return self.server


def _handler(registry: MemoryRegistry) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def _answer(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _body(self) -> bytes:
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def do_GET(self) -> None:  # the http.server name
            if self.path == "/v2/":
                return self._answer(200, b"{}")
            if found := re.fullmatch(r"/v2/(.+)/manifests/([^/]+)", self.path):
                stored = registry.manifests.get(f"{found[1]}:{found[2]}")
                if stored is None:
                    return self._answer(404)
                return self._answer(200, stored[0], {"Content-Type": stored[1], "Docker-Content-Digest": digest_of(stored[0])})
            if (found := re.fullmatch(r"/v2/(.+)/blobs/([^/]+)", self.path)) and found[2] in registry.blobs:
                return self._answer(200, registry.blobs[found[2]])
            return self._answer(404)

        def do_POST(self) -> None:
            if found := re.fullmatch(r"/v2/(.+)/blobs/uploads/", self.path):
                return self._answer(202, headers={"Location": f"/v2/{found[1]}/blobs/uploads/{uuid.uuid4().hex}"})
            return self._answer(404)

        def do_PUT(self) -> None:
            body = self._body()
            if found := re.fullmatch(r"/v2/(.+)/blobs/uploads/[0-9a-f]+\?digest=sha256%3A([0-9a-f]{64})", self.path):
                registry.blobs[f"sha256:{found[2]}"] = body
                return self._answer(201)
            if found := re.fullmatch(r"/v2/(.+)/manifests/([^/]+)", self.path):
                stored = (body, self.headers.get("Content-Type", ""))
                registry.manifests[f"{found[1]}:{found[2]}"] = stored
                registry.manifests[f"{found[1]}:{digest_of(body)}"] = stored
                return self._answer(201, headers={"Docker-Content-Digest": digest_of(body)})
            return self._answer(404)

        def log_message(self, *args: Any) -> None:
            pass

    return Handler
