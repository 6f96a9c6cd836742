#!/bin/sh
# Run once, as root, inside the base image while Containerfile.base is built by hand (imagekit
# build writes the same changes as a layer itself: imagekit/build/runtimebase.py; keep them in step).
# Deterministic on purpose: no package manager, no clock, no network.
set -eu
export PYTHONDONTWRITEBYTECODE=1  # importing to check must not leave bytecode in the layer

SETUP=/opt/imagekit/setup
USER_ID=10001

# 1. What the runtime needs (supervisor, pyyaml, prometheus_client), offline and only when the base image lacks it.
#    A wheel is a zip laid out for site-packages: extracting it needs neither pip nor a network.
if python3 -c 'import supervisor.supervisord, yaml, prometheus_client' 2>/dev/null; then
    echo "imagekit: supervisor, pyyaml and prometheus_client already in the base image"
else
    if ! ls "$SETUP"/wheels/*.whl >/dev/null 2>&1; then
        echo "imagekit: the base image lacks supervisor, pyyaml or prometheus_client and no wheels were provided" >&2
        exit 1
    fi
    python3 - "$SETUP/wheels" <<'PY'
import glob, sys, sysconfig, zipfile
target = sysconfig.get_paths()["purelib"]
for wheel in sorted(glob.glob(sys.argv[1] + "/*.whl")):
    print("imagekit: installing", wheel.rsplit("/", 1)[-1], "into", target)
    zipfile.ZipFile(wheel).extractall(target)
PY
    python3 -c 'import supervisor.supervisord, yaml, prometheus_client'
fi
for program in supervisord supervisorctl; do
    if ! command -v "$program" >/dev/null 2>&1; then
        printf '#!/bin/sh\nexec python3 -m supervisor.%s "$@"\n' "$program" > "/usr/local/bin/$program"
        chmod 755 "/usr/local/bin/$program"
    fi
done

# 2. The non-root user, written directly so no tool stamps today's date into /etc/shadow.
if ! grep -q '^imagekit:' /etc/passwd; then
    grep -q "^[^:]*:[^:]*:$USER_ID:" /etc/group || echo "imagekit:x:$USER_ID:" >> /etc/group
    echo "imagekit:x:$USER_ID:$USER_ID:imagekit runtime:/home/imagekit:/usr/sbin/nologin" >> /etc/passwd
fi
mkdir -p /home/imagekit /opt/imagekit/deps /opt/imagekit/pipeline /var/lib/imagekit/ssd /var/lib/imagekit/pv
# Default checkpoint places, for runs without volumes: writable by the runtime's user.
chown "$USER_ID:$USER_ID" /home/imagekit /var/lib/imagekit/ssd /var/lib/imagekit/pv
chmod 755 /opt/imagekit /opt/imagekit/deps /opt/imagekit/pipeline /var/lib/imagekit

rm -rf "$SETUP"
