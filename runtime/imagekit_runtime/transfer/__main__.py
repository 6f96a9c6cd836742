"""`python3 -m imagekit_runtime.transfer`: the programs of the built-in source and sink steps.

    fetch NAME              the source NAME into $IMAGEKIT_OUT_<NAME> (its manifest in the run directory)
    sink NAME               the committed $IMAGEKIT_IN_<NAME> to the sink's URL
    probe REQUEST ANSWER    (the runtime's) identities of the s3 sources in REQUEST, as JSON into ANSWER

Errors are one line naming the source or sink and its URL (credentials and query strings removed); exit 3.
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from types import ModuleType

from imagekit_core import contract
from imagekit_core.errors import EXIT_BAD_INPUT, EXIT_ENVIRONMENT, ImagekitError, one_line
from imagekit_core.spec.quantity import human_size
from imagekit_core.spec.sources import SINK_STEP_PREFIX, SOURCE_STEP_PREFIX

from . import files, web
from .manifest import Manifest, read_manifest, redact


def scheme_module(scheme: str) -> ModuleType:
    """The module that moves bytes for a scheme; for s3 boto3 from the image's s3 layer, else the host's."""
    if scheme != "s3":
        return files if scheme == "file" else web
    if os.path.isdir(contract.IMAGE_S3_CLIENT_DIR) and contract.IMAGE_S3_CLIENT_DIR not in sys.path:
        sys.path.append(contract.IMAGE_S3_CLIENT_DIR)
    try:
        from . import s3
    except ImportError as exc:
        raise ImagekitError(f"the s3 client (boto3) cannot be imported ({exc}): build the image with this "
                            "pipeline (its s3 layer holds it), or install boto3 for `run --local`") from None
    return s3


def probe(request: Path, answer: Path) -> None:
    manifests = [Manifest.from_json(item) for item in json.loads(request.read_text())]
    s3 = scheme_module("s3")
    client = s3.client()
    found = {m.step: [entry.__dict__ for entry in s3.probe(m, client)] for m in manifests}
    answer.write_text(json.dumps(found))


def transfer(kind: str, name: str) -> None:
    run_dir = Path(os.environ[contract.RUN_DIR])
    started = time.monotonic()
    if kind == "fetch":
        manifest = read_manifest(run_dir, SOURCE_STEP_PREFIX + name)
        moved = scheme_module(manifest.scheme).fetch(manifest, Path(os.environ[contract.output_var(name)]))
        verb, where = "fetched", "from"
    else:
        manifest = read_manifest(run_dir, SINK_STEP_PREFIX + name)
        moved = scheme_module(manifest.scheme).upload(manifest, Path(os.environ[contract.input_var(name)]))
        verb, where = "uploaded", "to"
    seconds = max(time.monotonic() - started, 1e-6)
    print(f"{verb} {human_size(moved)} {where} {redact(manifest.url)} in {seconds:.2f}s "
          f"({human_size(int(moved / seconds))}/s)", flush=True)


def main(argv: list[str]) -> int:
    try:
        if len(argv) == 3 and argv[0] == "probe":
            probe(Path(argv[1]), Path(argv[2]))
        elif len(argv) == 2 and argv[0] in ("fetch", "sink"):
            transfer(argv[0], argv[1])
        else:
            print(__doc__, file=sys.stderr)
            return EXIT_BAD_INPUT
    except ImagekitError as exc:
        print(f"error: {one_line(str(exc))}", file=sys.stderr, flush=True)
        return exc.exit_code if exc.exit_code != 1 else EXIT_ENVIRONMENT
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
