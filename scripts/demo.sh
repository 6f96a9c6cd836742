#!/bin/sh
# Set up this machine and run the bundled example: word frequencies over a generated corpus,
# five steps (two of them pinning conflicting numpy versions), on the host, over /dev/shm.
#
#   scripts/demo.sh                        # 8 MiB per shard
#   WORDFREQ_BYTES=1Gi scripts/demo.sh     # move more than a GiB through shared memory
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
if [ "$(python3 -c 'import imagekit_runtime, os; print(os.path.dirname(os.path.dirname(os.path.dirname(imagekit_runtime.__file__))))' 2>/dev/null)" != "$ROOT" ]; then
    echo "demo: installing imagekit from this checkout" >&2
    python3 -m pip install -q -e "$ROOT" >&2
fi
OUT=${OUT:-$ROOT/demo-out}
imagekit validate pipelines/wordfreq
imagekit run pipelines/wordfreq --local \
    --param "WORDFREQ_BYTES=${WORDFREQ_BYTES:-8Mi}" \
    --ssd "$OUT/ssd" --pv "$OUT/pv" --results "$OUT/results" --force
echo "demo: results in $OUT/results:" >&2
ls -l "$OUT/results" >&2
head -c 400 "$OUT/results/report" >&2; echo >&2
