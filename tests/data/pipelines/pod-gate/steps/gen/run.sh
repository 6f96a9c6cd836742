# Held while the gate file exists (the PV directory is the pod's; locally there is none).
while [ -e "${IMAGEKIT_PV_DIR:-/nonexistent}/gates/hold-$IMAGEKIT_STEP" ]; do sleep 0.05; done
first=$((IMAGEKIT_SHARD_INDEX * COUNT + 1))
seq "$first" $((first + COUNT - 1)) > "$IMAGEKIT_OUT_NUMBERS"
echo "gen: $COUNT numbers from $first"  # a line for `imagekit pod logs --step gen`
