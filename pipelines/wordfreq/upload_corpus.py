"""Upload wordfreq's corpus, one object per shard, for pipeline-s3.yaml to read (`sources: corpus`).

    python3 pipelines/wordfreq/upload_corpus.py [--shards 2] [--bytes 8Mi] [--bucket imagekit-wordfreq]

Each shard's corpus is the one steps/generate writes for that shard (the same text pipeline.yaml makes),
uploaded to s3://BUCKET/corpus/part-NNNNN.txt; the bucket is created if it is missing. boto3 on the host
reads the standard configuration: AWS_ENDPOINT_URL (e.g. a local moto server), AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY, AWS_REGION.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import boto3

GENERATE = Path(__file__).resolve().parent / "steps" / "generate" / "main.py"
KEY = "corpus/part-{shard:05d}.txt"  # as pipeline-s3.yaml's source names it


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shards", type=int, default=2)
    parser.add_argument("--bytes", default="8Mi", help="corpus size per shard (WORDFREQ_BYTES)")
    parser.add_argument("--bucket", default="imagekit-wordfreq")
    args = parser.parse_args()
    client = boto3.client("s3")
    buckets = {bucket["Name"] for bucket in client.list_buckets().get("Buckets", [])}
    if args.bucket not in buckets:
        client.create_bucket(Bucket=args.bucket)
    with tempfile.TemporaryDirectory() as scratch:
        for shard in range(args.shards):
            corpus = Path(scratch) / f"part-{shard}.txt"
            env = {**os.environ, "WORDFREQ_BYTES": args.bytes, "IMAGEKIT_SHARD_INDEX": str(shard),
                   "IMAGEKIT_OUT_CORPUS": str(corpus)}
            subprocess.run([sys.executable, str(GENERATE)], env=env, check=True)
            key = KEY.format(shard=shard)
            client.upload_file(str(corpus), args.bucket, key)
            print(f"s3://{args.bucket}/{key}: {corpus.stat().st_size} bytes")
            corpus.unlink()


if __name__ == "__main__":
    main()
