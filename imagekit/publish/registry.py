"""Publish to an OCI/Docker registry (the Distribution API), with docker config.json credentials.

The engine pushes; this module checks that the registry answers first (exit 3
when it doesn't), reads the pushed manifest back, and works out which blobs had
to be uploaded: the engine says so when it can (Docker), otherwise a blob that
the repository held before the push was not uploaded again (buildah).
"""
from __future__ import annotations

import base64
import contextlib
import hashlib
import ipaddress
import json
import logging
import os
import re
import shutil
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

from imagekit.build.backend import Backend
from imagekit_core import contract
from imagekit_core.cachedir import cache_root
from imagekit_core.errors import EnvironmentMissing, UsageError
from imagekit_core.references import parse_reference

from .credentials import authfile, credentials_for
from .publisher import Published, PublishedLayer

log = logging.getLogger("imagekit.publish")

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"  # Docker's name for an index
INDEX_TYPES = (OCI_INDEX, DOCKER_LIST)
MANIFEST_TYPES = ", ".join([
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    *INDEX_TYPES,
])


def is_insecure(host: str) -> bool:
    """Plain HTTP only for loopback registries (as the Docker engine allows), or ones listed in IMAGEKIT_INSECURE_REGISTRIES."""
    listed = {entry.strip() for entry in os.environ.get(contract.INSECURE_REGISTRIES, "").split(",") if entry.strip()}
    if host in listed:
        return True
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    name = name.strip("[]")
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


class RegistryClient:
    """Just enough of the Distribution API: ping, blob existence, manifests; Basic and Bearer auth."""

    def __init__(self, host: str, timeout: float = 10.0) -> None:
        self.host = host
        self.scheme = "http" if is_insecure(host) else "https"
        self.timeout = timeout
        self._authorization: str | None = None

    def _url(self, path: str) -> str:
        return f"{self.scheme}://{self.host}{path}"

    def ping(self) -> None:
        request = urllib.request.Request(self._url("/v2/"), method="GET")
        try:
            urllib.request.urlopen(request, timeout=self.timeout).close()
        except urllib.error.HTTPError as exc:
            if exc.code in (401, 403):  # it answers; credentials come later
                return
            raise EnvironmentMissing(f"registry {self.host} answered /v2/ with HTTP {exc.code}: is it a registry?") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise EnvironmentMissing(
                f"registry {self.host} unreachable ({reason}): check the address, or start one "
                f"(Debian: apt-get install docker-registry; it serves 127.0.0.1:5000)") from None

    def _authorize(self, challenge: str, scope: str) -> None:
        credentials = credentials_for(self.host)
        scheme, _, params = challenge.partition(" ")
        if scheme.lower() == "basic":
            if credentials:
                self._authorization = "Basic " + base64.b64encode(":".join(credentials).encode()).decode()
            return
        fields = dict(re.findall(r'(\w+)="([^"]*)"', params))
        if "realm" not in fields:
            raise EnvironmentMissing(f"registry {self.host} asked for {scheme or 'an unknown'} authentication "
                                     f"without a realm (fix: check that {self.host} is a registry)")
        query = {"service": fields.get("service", ""), "scope": fields.get("scope", scope)}
        request = urllib.request.Request(fields["realm"] + "?" + urllib.parse.urlencode(query))
        if credentials:
            request.add_header("Authorization", "Basic " + base64.b64encode(":".join(credentials).encode()).decode())
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                data = json.loads(response.read())
        except urllib.error.HTTPError as exc:  # the token service refused the credentials: never asked again
            raise self.refused(exc.code, scope) from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise EnvironmentMissing(f"registry {self.host}: its token service {fields['realm']} failed ({exc})") from None
        self._authorization = "Bearer " + (data.get("token") or data.get("access_token", ""))

    def _request(self, method: str, path: str, scope: str, accept: str | None = None) -> tuple[int, bytes]:
        status, body, _ = self._send(method, path, scope, accept=accept)
        return status, body

    def _send(self, method: str, path: str, scope: str, *, accept: str | None = None,
              data: bytes | Path | None = None, content_type: str | None = None,
              sink: IO[bytes] | None = None) -> tuple[int, bytes, Mapping[str, str]]:
        """One request (a path under the host, or a full URL the registry gave), asked again once with
        credentials when challenged; a file as data is streamed, and a response into sink when given."""
        url = path if path.startswith(("http://", "https://")) else self._url(path)
        for attempt in range(2):
            with contextlib.ExitStack() as stack:
                body = stack.enter_context(open(data, "rb")) if isinstance(data, Path) else data
                request = urllib.request.Request(url, data=body, method=method)
                if isinstance(data, Path):
                    request.add_header("Content-Length", str(data.stat().st_size))
                if content_type:
                    request.add_header("Content-Type", content_type)
                if accept:
                    request.add_header("Accept", accept)
                if self._authorization:
                    request.add_header("Authorization", self._authorization)
                try:
                    with urllib.request.urlopen(request, timeout=self.timeout) as response:
                        headers = dict(response.headers.items())
                        if sink is None:
                            return response.status, response.read(), headers
                        shutil.copyfileobj(response, sink, 1 << 20)
                        return response.status, b"", headers
                except urllib.error.HTTPError as exc:
                    challenge = exc.headers.get("WWW-Authenticate")
                    if exc.code == 401 and challenge and attempt == 0:
                        self._authorize(challenge, scope)
                        continue
                    return exc.code, b"", dict(exc.headers.items())
                except (urllib.error.URLError, OSError) as exc:
                    raise EnvironmentMissing(f"registry {self.host}: {method} {url} failed "
                                             f"({getattr(exc, 'reason', exc)}) (fix: check that the registry is up "
                                             "and reachable)") from None
        return 401, b"", {}

    def refused(self, status: int, scope: str) -> EnvironmentMissing:
        given = "the credentials" if credentials_for(self.host) else "access without credentials"
        return EnvironmentMissing(f"registry {self.host} refused {given} for {scope} (HTTP {status}) (fix: `docker login "
                                  f"{self.host}` with an account that may do that, or point DOCKER_CONFIG at its "
                                  f"config.json)")

    def check_push(self, repository: str) -> None:
        """Whether these credentials may push to repository, asked once before the engine pushes: a refused
        credential is then never presented again (an engine retries each layer: an account lockout)."""
        scope = f"repository:{repository}:pull,push"
        status, _ = self._request("HEAD", f"/v2/{repository}/blobs/sha256:{'0' * 64}", scope)
        if status in (401, 403):
            raise self.refused(status, scope)
        if status >= 500:
            raise EnvironmentMissing(f"registry {self.host} failed (HTTP {status}) on {self._url('/v2/' + repository)} "
                                     "(fix: check the registry's health)")

    def blob_exists(self, repository: str, digest: str) -> bool:
        status, _ = self._request("HEAD", f"/v2/{repository}/blobs/{digest}", f"repository:{repository}:pull")
        return status == 200

    def manifest(self, repository: str, reference: str) -> dict[str, Any]:
        return self.manifest_and_digest(repository, reference)[0]

    def manifest_bytes(self, repository: str, reference: str) -> tuple[bytes, str, str]:
        """A manifest as stored (by tag or digest): its bytes, media type and digest."""
        status, body, headers = self._send("GET", f"/v2/{repository}/manifests/{reference}",
                                           f"repository:{repository}:pull", accept=MANIFEST_TYPES)
        if status != 200:
            raise EnvironmentMissing(f"registry {self.host}: manifest {repository}@{reference} not readable (HTTP {status})")
        media_type = headers.get("Content-Type") or json.loads(body).get("mediaType", "")
        return body, media_type, headers.get("Docker-Content-Digest") or "sha256:" + hashlib.sha256(body).hexdigest()

    def manifest_and_digest(self, repository: str, reference: str) -> tuple[dict[str, Any], str]:
        """A manifest (by tag or digest), and its digest as the registry keeps it."""
        status, body, headers = self._send("GET", f"/v2/{repository}/manifests/{reference}",
                                           f"repository:{repository}:pull", accept=MANIFEST_TYPES)
        if status == 404:
            raise UsageError(f"registry {self.host} has no image {repository}:{reference} "
                             f"(fix: check the image reference, or push it first)")
        if status != 200:
            raise EnvironmentMissing(f"registry {self.host}: manifest {repository}@{reference} not readable (HTTP {status})")
        manifest: dict[str, Any] = json.loads(body)
        return manifest, headers.get("Docker-Content-Digest") or "sha256:" + hashlib.sha256(body).hexdigest()

    def config(self, repository: str, manifest: dict[str, Any]) -> dict[str, Any]:
        config: dict[str, Any] = json.loads(self.blob(repository, str(manifest["config"]["digest"])))
        return config

    def blob(self, repository: str, digest: str) -> bytes:
        """A blob's bytes as stored (a layer: compressed as pushed)."""
        status, body = self._request("GET", f"/v2/{repository}/blobs/{digest}", f"repository:{repository}:pull")
        if status != 200:
            raise EnvironmentMissing(f"registry {self.host}: blob {repository}@{digest} not readable (HTTP {status})")
        return body


    def download(self, repository: str, digest: str, sink: IO[bytes]) -> None:
        """A blob's bytes as stored, written to sink as they come."""
        status, _, _ = self._send("GET", f"/v2/{repository}/blobs/{digest}", f"repository:{repository}:pull", sink=sink)
        if status != 200:
            raise EnvironmentMissing(f"registry {self.host}: blob {repository}@{digest} not readable (HTTP {status})")

    def mount(self, repository: str, digest: str, source: str) -> bool:
        """Whether the registry mounted the blob from the source repository into repository (no bytes sent)."""
        scope = f"repository:{repository}:pull,push repository:{source}:pull"
        query = urllib.parse.urlencode({"mount": digest, "from": source})
        status, _, _ = self._send("POST", f"/v2/{repository}/blobs/uploads/?{query}", scope)
        return status == 201

    def upload(self, repository: str, digest: str, blob: Path) -> None:
        """The blob at path, uploaded whole (one POST for a session, one PUT with the bytes)."""
        scope = f"repository:{repository}:pull,push"
        status, _, headers = self._send("POST", f"/v2/{repository}/blobs/uploads/", scope)
        location = headers.get("Location", "")
        if status != 202 or not location:
            raise EnvironmentMissing(f"registry {self.host}: no upload of {digest} to {repository} (HTTP {status})")
        url = urllib.parse.urljoin(self._url("/"), location)
        url += ("&" if "?" in url else "?") + urllib.parse.urlencode({"digest": digest})
        status, _, _ = self._send("PUT", url, scope, data=blob, content_type="application/octet-stream")
        if status != 201:
            raise EnvironmentMissing(f"registry {self.host}: upload of {digest} to {repository} failed (HTTP {status})")

    def put_manifest(self, repository: str, reference: str, manifest: bytes, media_type: str) -> str:
        """The manifest stored under reference (a tag); its digest."""
        status, _, headers = self._send("PUT", f"/v2/{repository}/manifests/{reference}",
                                        f"repository:{repository}:pull,push", data=manifest, content_type=media_type)
        if status not in (200, 201):
            raise EnvironmentMissing(f"registry {self.host}: manifest {repository}:{reference} refused (HTTP {status})")
        return headers.get("Docker-Content-Digest") or "sha256:" + hashlib.sha256(manifest).hexdigest()


class BlobIndex:
    """Which registry blobs (compressed) hold which layer (diff ID), as learnt from earlier pushes."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or cache_root() / "blob-index.json"
        try:
            self.entries: dict[str, list[str]] = json.loads(self.path.read_text())
        except (OSError, ValueError):
            self.entries = {}

    def candidates(self, diff_id: str) -> list[str]:
        return [diff_id, *self.entries.get(diff_id, [])]

    def record(self, diff_id: str, digest: str) -> None:
        known = self.entries.setdefault(diff_id, [])
        if digest not in known and digest != diff_id:
            known.append(digest)

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(".part")
        temporary.write_text(json.dumps(self.entries, indent=1, sort_keys=True))
        os.replace(temporary, self.path)


class RegistryPublisher:
    def publish(self, backend: Backend, image: str, destination: str) -> Published:
        started = time.monotonic()
        reference = parse_reference(destination, "REF", registry=True, digest=False)  # push to a tag
        assert reference.host is not None  # registry=True
        client = RegistryClient(reference.host)
        client.ping()
        client.check_push(reference.repository)
        info = backend.inspect(image)
        index = BlobIndex()
        present_before = {candidate for diff_id in info.diff_ids for candidate in index.candidates(diff_id)
                          if client.blob_exists(reference.repository, candidate)}
        target = str(reference.with_tag(reference.tag or "latest"))
        log.info("pushing %s to %s", image, target)
        report = backend.push(image, target, insecure=is_insecure(reference.host), authfile=authfile())
        manifest = client.manifest(reference.repository, report.digest)
        layers_said = manifest.get("layers")
        if not isinstance(layers_said, list) or not all(isinstance(layer, dict) and isinstance(layer.get("size"), int)
                                                        and isinstance(layer.get("digest"), str) for layer in layers_said):
            raise EnvironmentMissing(f"registry {reference.host} answered the manifest of {target}@{report.digest} "
                                     "without a digest and size per layer (fix: check that it is a registry)")
        blobs = [(str(layer["digest"]), int(layer["size"])) for layer in layers_said]
        layers = []
        for position, (diff_id, (digest, size)) in enumerate(zip(info.diff_ids, blobs, strict=False)):
            said = report.uploaded[position] if position < len(report.uploaded) else None
            uploaded = said if said is not None else digest not in present_before
            layers.append(PublishedLayer(diff_id=diff_id, digest=digest, size=size, uploaded=uploaded))
            index.record(diff_id, digest)
        index.save()
        return Published(reference=f"{target}@{report.digest}", digest=report.digest, layers=tuple(layers),
                         seconds=round(time.monotonic() - started, 3))
