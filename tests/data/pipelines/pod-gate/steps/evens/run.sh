# Held while the gate file exists (the PV directory is the pod's; locally there is none).
while [ -e "${IMAGEKIT_PV_DIR:-/nonexistent}/gates/hold-$IMAGEKIT_STEP" ]; do sleep 0.05; done
awk '$1 % 2 == 0' "$IMAGEKIT_IN_NUMBERS" > "$IMAGEKIT_OUT_EVENS"
