# Held while the gate file exists (the PV directory is the pod's; locally there is none).
while [ -e "${IMAGEKIT_PV_DIR:-/nonexistent}/gates/hold-$IMAGEKIT_STEP" ]; do sleep 0.05; done
mkdir "$IMAGEKIT_OUT_FINAL"
cp "$IMAGEKIT_IN_TOTAL" "$IMAGEKIT_OUT_FINAL/total"
echo "shard $IMAGEKIT_SHARD_INDEX of $IMAGEKIT_SHARD_COUNT" > "$IMAGEKIT_OUT_FINAL/shard"
