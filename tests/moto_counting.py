"""moto's S3 server (the real HTTP protocol), counting what it serves: `python3 moto_counting.py HOST PORT`.

GET /_imagekit/served answers {"gets": n, "get_bytes": b, "puts": n}: the object reads and writes since the
start (or the last POST /_imagekit/reset), so a test can assert a resume downloaded 0 bytes.
"""
from __future__ import annotations

import json
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import run_simple

STATS_PATH = "/_imagekit/served"
RESET_PATH = "/_imagekit/reset"


class Counting:
    def __init__(self, app: Any) -> None:
        self.app = app
        self.lock = threading.Lock()
        self.counts = {"gets": 0, "get_bytes": 0, "puts": 0}

    def add(self, name: str, amount: int) -> None:
        with self.lock:
            self.counts[name] += amount

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "")
        if path in (STATS_PATH, RESET_PATH):
            if path == RESET_PATH:
                with self.lock:
                    self.counts = dict.fromkeys(self.counts, 0)
            body = json.dumps(self.counts).encode()
            start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
            return [body]
        is_object = path.strip("/").count("/") >= 1  # path-style /bucket/key
        if method == "PUT" and is_object:
            self.add("puts", 1)
        if method != "GET" or not is_object or environ.get("QUERY_STRING", "").startswith(("list-type", "prefix")):
            return self.app(environ, start_response)
        self.add("gets", 1)
        return self.counted(self.app(environ, start_response))

    def counted(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        try:
            for chunk in chunks:
                self.add("get_bytes", len(chunk))
                yield chunk
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()


def main() -> None:
    host, port = sys.argv[1], int(sys.argv[2])
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(host, port, Counting(app), threaded=True)


if __name__ == "__main__":
    main()
