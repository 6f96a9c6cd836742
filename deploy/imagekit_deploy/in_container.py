"""Programs run inside a pipeline container to read its files, by the cluster verbs (kube/) and the local pods
(emulator/) alike: `python3 -c PROGRAM PATH`. The image has python3 (the runtime needs it) and no promise of
any other tool; an exec's output is text, so bytes come back base64."""
from __future__ import annotations

READ_TEXT = "import sys; sys.stdout.write(open(sys.argv[1]).read())"
# A file (or a directory as a tar), base64.
READ_BASE64 = ("import base64, io, os, sys, tarfile\n"
               "path = sys.argv[1]\n"
               "if os.path.isdir(path):\n"
               "    buffer = io.BytesIO()\n"
               "    with tarfile.open(fileobj=buffer, mode='w') as tar:\n"
               "        tar.add(path, arcname='.')\n"
               "    data = buffer.getvalue()\n"
               "else:\n"
               "    data = open(path, 'rb').read()\n"
               "sys.stdout.write(base64.b64encode(data).decode())\n")


def reading(program: str, *args: str) -> list[str]:
    """The argv that runs `program` (with its arguments, a path) in the container."""
    return ["python3", "-c", program, *args]
