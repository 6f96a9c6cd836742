#!/bin/sh
# A step in plain shell: it knows only the environment variables of the step contract.
set -eu
wc -l -w -c < "$IMAGEKIT_IN_CORPUS" | awk '{ printf "{\"lines\": %d, \"words\": %d, \"bytes\": %d}\n", $1, $2, $3 }' > "$IMAGEKIT_OUT_LINESTATS"
