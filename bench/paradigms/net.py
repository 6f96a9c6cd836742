"""HTTP services (paradigm b) and a minimal S3 client (paradigm c), on top of work.py's producer and consumer."""
from __future__ import annotations

import datetime
import hashlib
import hmac
import http.client
import http.server
import json
import time
import urllib.parse

from work import checksum, produce_memory, receive, slices


# --------------------------------------------------------------- services
class Consumer(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        # The whole body first, then the checksum: a step consumes a complete input, as in every other
        # paradigm (checksumming while receiving would also overlap the two steps' work on two cores).
        started = time.time()
        data = receive(self.rfile.readinto, int(self.headers["Content-Length"]))
        self._reply(checksum(data, started, time.time()))

    def _reply(self, result: dict) -> None:
        body = json.dumps(result).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:  # quiet
        pass


class Producer(Consumer):
    def do_GET(self) -> None:
        query = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query)
        size = int(query["size"][0])
        host, port = query["to"][0].rsplit(":", 1)
        data, produced = produce_memory(size)
        connection = http.client.HTTPConnection(host, int(port), timeout=600)
        connection.putrequest("POST", "/consume")
        connection.putheader("Content-Type", "application/octet-stream")
        connection.putheader("Content-Length", str(size))
        connection.endheaders()
        for piece in slices(data):
            connection.send(piece)
        produced["sent"] = time.time()
        response = connection.getresponse()
        consumer = json.loads(response.read())
        connection.close()
        del data
        self._reply({**produced, **consumer})


def serve(handler, port: int) -> None:
    server = http.server.HTTPServer(("0.0.0.0", port), handler)
    print(json.dumps({"listening": port}), flush=True)
    server.serve_forever()


# ---------------------------------------------------------------------- S3
# A minimal S3 client: PutObject and GetObject with Signature V4 and an unsigned payload, streamed
# in 1 MiB pieces. It is what an SDK sends minus its extras (retries, checksums, multipart), so the
# store's numbers are a lower bound on what a function with boto3 would see.
ACCESS_KEY = "imagekit-bench"
SECRET_KEY = "imagekit-bench-secret"
REGION = "us-east-1"


def _sign(method: str, host: str, path: str) -> dict[str, str]:
    now = datetime.datetime.now(datetime.UTC)
    amz_date, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
    payload = "UNSIGNED-PAYLOAD"
    signed = "host;x-amz-content-sha256;x-amz-date"
    canonical = "\n".join([method, path, "", f"host:{host}", f"x-amz-content-sha256:{payload}",
                           f"x-amz-date:{amz_date}", "", signed, payload])
    scope = f"{day}/{REGION}/s3/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = ("AWS4" + SECRET_KEY).encode()
    for part in (day, REGION, "s3", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    return {"Host": host, "x-amz-date": amz_date, "x-amz-content-sha256": payload,
            "Authorization": f"AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/{scope}, SignedHeaders={signed}, "
                             f"Signature={signature}"}


def s3_request(endpoint: str, method: str, path: str, body_size: int | None = None, body=None):
    """Open a request; returns (connection, response) with the response body unread."""
    parsed = urllib.parse.urlparse(endpoint)
    if parsed.hostname is None:
        raise ValueError(f"{endpoint!r} names no host")
    connection = http.client.HTTPConnection(parsed.hostname, parsed.port or 80, timeout=600)
    connection.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
    for name, value in _sign(method, parsed.netloc, path).items():
        connection.putheader(name, value)
    if body_size is not None:
        connection.putheader("Content-Type", "application/octet-stream")
        connection.putheader("Content-Length", str(body_size))
    connection.endheaders()
    for chunk in body or ():
        connection.send(chunk)
    response = connection.getresponse()
    return connection, response


def _check(response, what: str) -> None:
    if response.status // 100 != 2:
        raise SystemExit(f"{what}: HTTP {response.status}: {response.read()[:300]!r}")


def s3_simple(endpoint: str, method: str, path: str) -> int:
    connection, response = s3_request(endpoint, method, path, body_size=0 if method == "PUT" else None)
    response.read()
    connection.close()
    return response.status


def s3_put(endpoint: str, bucket: str, key: str, size: int) -> dict:
    data, result = produce_memory(size)
    connection, response = s3_request(endpoint, "PUT", f"/{bucket}/{key}", size, slices(data))
    _check(response, "PutObject")
    response.read()
    connection.close()
    result["stored"] = time.time()
    return result


def s3_get(endpoint: str, bucket: str, key: str, size: int) -> dict:
    started = time.time()
    connection, response = s3_request(endpoint, "GET", f"/{bucket}/{key}")
    _check(response, "GetObject")
    data = receive(response.readinto, size)
    connection.close()
    return checksum(data, started, time.time())
