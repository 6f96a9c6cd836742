# Held while the gate file exists (the PV directory is the pod's; locally there is none).
while [ -e "${IMAGEKIT_PV_DIR:-/nonexistent}/gates/hold-$IMAGEKIT_STEP" ]; do sleep 0.05; done
awk '{ s += $1; n += 1 } END { printf "%d %d\n", n, s }' "$IMAGEKIT_IN_NUMBERS" > "$IMAGEKIT_OUT_TOTAL"
