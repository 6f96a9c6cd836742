"""One connection to a cluster, made from a kubeconfig as kubectl makes it, and the calls imagekit makes."""
from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imagekit_core.errors import EnvironmentMissing, ImagekitError, UsageError

from ..in_container import READ_BASE64, READ_TEXT, reading

FIELD_MANAGER = "imagekit"
KUBECONFIG_HELP = "kubeconfig file [default: $KUBECONFIG, else ~/.kube/config]"
CONTEXT_HELP = "kubeconfig context [default: the current one]"


class ClusterError(ImagekitError):
    """The cluster refused or failed a request: exit 3, the status and what was asked."""

    exit_code = 3


def api_message(exc: Any) -> str:
    """The message of a refused request (the Status in its body), else its reason."""
    try:
        return str(json.loads(exc.body or "{}").get("message") or exc.reason)
    except (ValueError, TypeError, AttributeError):
        return str(exc.reason)


@dataclass
class Cluster:
    """A connection to one cluster. The client library is imported when a cluster is used, not when imagekit
    starts: importing it took 0.3-0.4 s here (python3 -c, 3 runs, less an empty interpreter) and most verbs never need it."""

    api: Any       # kubernetes.client.ApiClient
    namespace: str  # the context's namespace, or default

    @classmethod
    def connect(cls, kubeconfig: Path | None = None, context: str | None = None,
                namespace: str | None = None) -> Cluster:
        from kubernetes import config
        from kubernetes.config.config_exception import ConfigException

        where = str(kubeconfig) if kubeconfig else os.environ.get("KUBECONFIG") or "~/.kube/config"
        file = str(kubeconfig) if kubeconfig else None
        try:
            api = config.new_client_from_config(config_file=file, context=context)
            contexts, current = config.list_kube_config_contexts(config_file=file)
        except (ConfigException, OSError) as exc:
            raise EnvironmentMissing(f"no cluster from kubeconfig {where}: {exc} (fix: pass --kubeconfig FILE, or set "
                                     "KUBECONFIG to the cluster's kubeconfig)") from None
        chosen = current if context is None else next((c for c in contexts if c["name"] == context), current)
        default_namespace = (chosen or {}).get("context", {}).get("namespace") or "default"
        cluster = cls(api=api, namespace=namespace or default_namespace)
        cluster.check()
        return cluster

    def check(self) -> None:
        """The API server answers (a version request, 10 s at most)."""
        from kubernetes import client

        try:
            client.VersionApi(self.api).get_code(_request_timeout=10)
        except Exception as exc:  # urllib3 and ApiException alike: the cluster does not answer
            host = self.api.configuration.host
            raise EnvironmentMissing(f"the cluster at {host} does not answer ({type(exc).__name__}: "
                                     f"{str(exc).splitlines()[0][:200] if str(exc) else ''}) "
                                     "(fix: check the kubeconfig's server, and that the cluster is up)") from None

    @property
    def core(self) -> Any:
        from kubernetes import client
        return client.CoreV1Api(self.api)

    def dynamic(self) -> Any:
        from kubernetes.dynamic import DynamicClient
        return DynamicClient(self.api)

    def resource(self, api_version: str, kind: str) -> Any:
        from kubernetes.dynamic.exceptions import ResourceNotFoundError

        try:
            return self.dynamic().resources.get(api_version=api_version, kind=kind)
        except ResourceNotFoundError:
            fix = "install OpenKruise, or render --flavor statefulset" if "kruise" in api_version else "check the cluster"
            raise UsageError(f"the cluster has no {kind} in {api_version} (fix: {fix})") from None

    def get(self, api_version: str, kind: str, name: str, namespace: str) -> dict[str, Any] | None:
        from kubernetes.dynamic.exceptions import NotFoundError

        try:
            found: dict[str, Any] = self.resource(api_version, kind).get(name=name, namespace=namespace).to_dict()
            return found
        except NotFoundError:
            return None

    def pods(self, namespace: str, selector: str) -> list[Any]:
        return list(self.core.list_namespaced_pod(namespace, label_selector=selector).items)

    def exec_read(self, pod: str, namespace: str, container: str, script: str, *args: str) -> str | None:
        """What `python3 -c script args…` prints in the container (None when it could not run or failed)."""
        from kubernetes.client.rest import ApiException
        from kubernetes.stream import stream

        try:
            client = stream(self.core.connect_get_namespaced_pod_exec, pod, namespace, container=container,
                            command=reading(script, *args), stderr=True, stdin=False, stdout=True,
                            tty=False, _preload_content=False)
            client.run_forever(timeout=60)
            output = client.read_stdout() if client.peek_stdout() else ""
            code = client.returncode
            client.close()
        except (ApiException, OSError, ValueError):
            return None
        return str(output) if code == 0 else None

    def read_text(self, pod: str, namespace: str, container: str, path: str) -> str | None:
        """A text file in the container (None when it is not there or cannot be read)."""
        return self.exec_read(pod, namespace, container, READ_TEXT, path)

    def read_file_base64(self, pod: str, namespace: str, container: str, path: str) -> bytes | None:
        text = self.exec_read(pod, namespace, container, READ_BASE64, path)
        return None if text is None else base64.b64decode(text)

    def logs(self, pod: str, namespace: str, container: str, follow: bool = False) -> Iterator[str]:
        from kubernetes.client.rest import ApiException

        try:
            if not follow:
                yield str(self.core.read_namespaced_pod_log(pod, namespace, container=container))
                return
            response = self.core.read_namespaced_pod_log(pod, namespace, container=container, follow=True,
                                                         _preload_content=False)
            for chunk in response.stream():
                yield chunk.decode(errors="replace")
        except ApiException as exc:
            raise ClusterError(f"logs of pod {pod}: {exc.status} {exc.reason}") from None

