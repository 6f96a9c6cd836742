#!/bin/sh
# Set up this machine and run imagekit's main job on the bundled example, pipelines/wordfreq
# (word frequencies over a generated corpus: five steps, two of them pinning conflicting numpy
# versions, one a shell script):
#   1. scripts/bootstrap.sh   Docker engine, buildah, the local registry, the base image (idempotent)
#   2. imagekit build         one image: runtime base, a deps and a code layer per step; pushed
#                             to the registry on 127.0.0.1:5000
#   3. imagekit deploy render OpenKruise Advanced StatefulSet manifests, one shard per pod
#   4. imagekit pod up        those pods on the local Docker engine (shm, SSD and PV as on a node);
#                             in each, the steps take turns over the pod's /dev/shm
#   5. the results, then the pods are taken down (their volumes are kept under demo-out/)
#
#   scripts/demo.sh                        # 2 shards, 8 MiB of corpus each
#   WORDFREQ_BYTES=64Mi scripts/demo.sh    # more data per shard
#   scripts/demo.sh --host                 # only the runtime, on this host: no engine, no image
#   WORDFREQ_BYTES=1Gi scripts/demo.sh --host   # more than a GiB through shm: pipeline-1gi.yaml,
#                                          # which declares the 2Gi of shm that takes
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
OUT=${OUT:-$ROOT/demo-out}
BYTES=${WORDFREQ_BYTES:-8Mi}
IMAGE=${IMAGEKIT_DEMO_IMAGE:-127.0.0.1:5000/imagekit/wordfreq:demo}
NAME=wordfreq-demo   # the pods' set: wordfreq-demo-0 and -1, apart from any other wordfreq pods

if [ "${1:-}" = "--host" ]; then
    if [ "$(python3 -c 'import imagekit_core, imagekit_runtime, os; print(os.path.commonpath([os.path.dirname(os.path.dirname(os.path.dirname(m.__file__))) for m in (imagekit_core, imagekit_runtime)]))' 2>/dev/null)" != "$ROOT" ]; then
        echo "demo: installing imagekit from this checkout" >&2
        python3 -m pip install -q -e "$ROOT" >&2
    fi
    PIPELINE=pipelines/wordfreq
    case "$BYTES" in 1Gi|1024Mi) PIPELINE=pipelines/wordfreq/pipeline-1gi.yaml ;; esac
    imagekit validate "$PIPELINE"
    imagekit run "$PIPELINE" --local --param "WORDFREQ_BYTES=$BYTES" \
        --ssd "$OUT/host/ssd" --pv "$OUT/host/pv" --results "$OUT/host/results" --force
    echo "demo: results in $OUT/host/results:" >&2
    ls -l "$OUT/host/results" >&2
    head -c 400 "$OUT/host/results/report" >&2; echo >&2
    exit 0
fi
[ $# -eq 0 ] || { echo "usage: scripts/demo.sh [--host]" >&2; exit 2; }

sh scripts/bootstrap.sh   # also installs this checkout (pip install -e)
echo "demo: 1/4 validate and build $IMAGE" >&2
imagekit validate pipelines/wordfreq >&2
mkdir -p "$OUT"
imagekit build pipelines/wordfreq --tag "$IMAGE" --base imagekit/debian-python:bookworm --push >"$OUT/build.txt"
PINNED=$(cat "$OUT/build.txt")   # build's stdout: the reference it pushed, REF@sha256:…
echo "$PINNED"                   # (the demo's stdout)
echo "demo: 2/4 render the manifests for 2 shards into $OUT/manifests" >&2
imagekit deploy render pipelines/wordfreq --image "$PINNED" --require-digest --name "$NAME" --replicas 2 --ssd local-pv \
    -d "$OUT/manifests" >&2
echo "demo: 3/4 run them as local pods (state, claims and node disks in $OUT/pods)" >&2
imagekit pod down --state-dir "$OUT/pods" --delete-data >/dev/null   # a fresh start: an earlier demo's data goes
imagekit pod up "$OUT/manifests" --state-dir "$OUT/pods" --param "WORDFREQ_BYTES=$BYTES" >&2
status=0
imagekit pod status --state-dir "$OUT/pods" --wait --timeout 600 >&2 || status=$?
echo "demo: 4/4 results (each shard's results directory is on its PV claim)" >&2
for shard in 0 1; do
    results="$OUT/pods/claims/pv-$NAME-$shard/results/$shard"
    python3 - "$results" >&2 <<'PY' || echo "shard in $results: no report (see imagekit pod status --state-dir $OUT/pods)" >&2
import json, sys
r = json.load(open(sys.argv[1] + "/report"))
top = ", ".join(f"{word} {count}" for word, count in r["top10"][:3])
print(f"shard {r['shard']}: {r['bytes']} bytes, {r['words']} words, {r['distinct_words']} distinct; top: {top}")
print(f"  {sys.argv[1]}/ (counts, report)")
PY
done
imagekit pod down --state-dir "$OUT/pods" >/dev/null
echo "demo: pods removed; their volumes are kept in $OUT/pods ('imagekit pod down --state-dir $OUT/pods --delete-data' deletes them)" >&2
exit "$status"
