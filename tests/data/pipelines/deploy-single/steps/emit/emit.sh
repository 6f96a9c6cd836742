#!/bin/sh
# One line naming the shard this pod runs.
set -eu
echo "shard ${IMAGEKIT_SHARD_INDEX} of ${IMAGEKIT_SHARD_COUNT}" > "$IMAGEKIT_OUT_LINES"
