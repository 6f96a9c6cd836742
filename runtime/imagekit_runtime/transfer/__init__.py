"""Sources and sinks at run time (docs/sources.md).

Before planning, `plan.prepare_transfers` renders every source's and sink's URL for this shard and run,
learns each source's identity (a HEAD or a listing: its ETag, or its keys and ETags) and writes one
manifest per built-in step into the run directory. The built-in steps then run as
`python3 -m imagekit_runtime.transfer fetch|sink NAME` under supervisord, like any step: they read their
manifest and move the bytes (s3.py with boto3, web.py for HTTP(S), files.py for file://).

Only s3.py imports boto3 (from the image's s3 layer, contract.IMAGE_S3_CLIENT_DIR, or the host's
Python); the runtime itself reaches S3 only through a subprocess.
"""
