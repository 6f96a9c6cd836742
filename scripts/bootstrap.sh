#!/bin/sh
# Install and start, idempotently, what building and testing imagekit images needs:
# Debian's docker.io (dockerd), buildah, skopeo, umoci, mmdebstrap, docker-registry on
# 127.0.0.1:5000, the imagekit package itself, and a locally bootstrapped base image
# (no public registry can be reached here, so nothing is ever pulled).
#
# Fast when everything is already there; exit 3 with a message when something can't be
# installed or started. Everything it does is reported on stderr.
#
#   scripts/bootstrap.sh            # everything
#   IMAGEKIT_BOOTSTRAP_SKIP_BASE=1  # skip the base image
set -eu

export TESTCONTAINERS_RYUK_DISABLED=true
export DEBIAN_FRONTEND=noninteractive

ROOT=$(cd "$(dirname "$0")/.." && pwd)
STATE_DIR=/var/lib/imagekit
CONFIG_DIR=/etc/imagekit
REGISTRY_ADDR=${IMAGEKIT_REGISTRY:-127.0.0.1:5000}
BASE_TAG=${IMAGEKIT_BASE_IMAGE:-imagekit/debian-python:bookworm}
MIRROR=${IMAGEKIT_DEBIAN_MIRROR:-http://deb.debian.org/debian}
APT_PACKAGES="docker.io buildah skopeo umoci mmdebstrap docker-registry supervisor python3-yaml prometheus uidmap curl ca-certificates qemu-user-static arch-test"

say() { printf 'bootstrap: %s\n' "$*" >&2; }
die() { printf 'bootstrap: error: %s\n' "$*" >&2; exit 3; }

# Debian's dockerd comes first: /usr/local/bin may hold another client, which is fine, but the
# daemon must be Debian's.
DOCKERD=/usr/sbin/dockerd

ensure_apt_packages() {
    missing=""
    for package in $APT_PACKAGES; do
        status=$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null || true)
        case "$status" in
            *" installed") ;;
            *) missing="$missing $package" ;;
        esac
    done
    if [ -z "$missing" ]; then
        say "apt packages present"
        return
    fi
    say "installing apt packages:$missing"
    # Services must not be started by the package scripts: we start our own below.
    policy=/usr/sbin/policy-rc.d
    created_policy=""
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod 755 "$policy" && created_policy=1
    fi
    status=0
    { apt-get update -qq && apt-get install -y -qq --no-install-recommends $missing; } >&2 || status=$?
    [ -n "$created_policy" ] && rm -f "$policy"
    [ "$status" -eq 0 ] || die "apt-get install$missing failed (exit $status)"
}

ensure_binfmt() {
    # arm64 programs (multi-platform images) run here under qemu-user-static, registered with binfmt_misc.
    # The F flag opens the interpreter at registration, so it works in containers and chroots too. Without
    # systemd nothing registers it at boot: done here, once per boot.
    handler=/proc/sys/fs/binfmt_misc
    if ! grep -q binfmt_misc /proc/filesystems; then
        say "no binfmt_misc in this kernel: arm64 images cannot run here"
        return
    fi
    if ! mountpoint -q "$handler" 2>/dev/null && [ ! -e "$handler/register" ]; then
        mount -t binfmt_misc binfmt_misc "$handler" || die "mount binfmt_misc failed"
    fi
    for conf in /usr/lib/binfmt.d/qemu-aarch64.conf; do
        name=$(basename "$conf" .conf)
        if [ -e "$handler/$name" ]; then
            continue
        fi
        say "registering $name with binfmt_misc"
        grep -v '^#' "$conf" > "$handler/register" || die "registering $name with binfmt_misc failed"
    done
}

ensure_python_package() {
    # Importable, and from this checkout (an editable install of another clone would shadow it).
    location=$(cd / && python3 -c 'import imagekit, imagekit_core, imagekit_runtime, docker, typer, testcontainers, pytest, os
print(os.path.dirname(os.path.dirname(os.path.abspath(imagekit.__file__))))' 2>/dev/null || true)
    # An install made from an older pyproject.toml (other dependencies, other entry points) is redone.
    stamp="$STATE_DIR/installed-pyproject.sha256"
    wanted=$(sha256sum "$ROOT/pyproject.toml" | cut -d' ' -f1)
    if [ "$location" = "$ROOT" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$wanted" ]; then
        say "python package imagekit importable"
        return
    fi
    say "installing imagekit (pip install -e '.[test]')"
    python3 -m pip install -q -e "$ROOT[test]" >&2 || die "pip install -e '$ROOT[test]' failed"
    mkdir -p "$STATE_DIR" && printf '%s\n' "$wanted" > "$stamp"
}

ensure_dockerd() {
    if docker info >/dev/null 2>&1; then
        say "docker engine answering"
        return
    fi
    [ -x "$DOCKERD" ] || die "$DOCKERD not found: apt-get install docker.io"
    # A daemon that died leaves pid files that make the next one refuse to start.
    if [ -f /var/run/docker.pid ] && ! kill -0 "$(cat /var/run/docker.pid)" 2>/dev/null; then
        rm -f /var/run/docker.pid
    fi
    for pidfile in /var/run/docker/containerd/containerd.pid /run/docker/containerd/containerd.pid; do
        if [ -f "$pidfile" ] && ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
            rm -f "$pidfile"
        fi
    done
    say "starting dockerd (log: /var/log/imagekit-dockerd.log)"
    nohup setsid "$DOCKERD" >>/var/log/imagekit-dockerd.log 2>&1 </dev/null &
    for _ in $(seq 1 60); do
        docker info >/dev/null 2>&1 && { say "docker engine started"; return; }
        sleep 1
    done
    tail -n 20 /var/log/imagekit-dockerd.log >&2 || true
    die "dockerd did not answer within 60 s: see /var/log/imagekit-dockerd.log"
}

registry_answers() {
    curl -fsS -o /dev/null --max-time 3 "http://$REGISTRY_ADDR/v2/" 2>/dev/null
}

ensure_registry() {
    if registry_answers; then
        say "registry answering on $REGISTRY_ADDR"
    else
        command -v docker-registry >/dev/null || die "docker-registry not found: apt-get install docker-registry"
        mkdir -p "$CONFIG_DIR" "$STATE_DIR/registry"
        # Our own config: loopback only, no auth (Debian's default listens on all interfaces).
        cat > "$CONFIG_DIR/registry.yml" <<EOF
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $STATE_DIR/registry
  delete:
    enabled: true
http:
  addr: $REGISTRY_ADDR
EOF
        say "starting docker-registry on $REGISTRY_ADDR (log: /var/log/imagekit-registry.log)"
        nohup setsid docker-registry serve "$CONFIG_DIR/registry.yml" >>/var/log/imagekit-registry.log 2>&1 </dev/null &
        started=""
        for _ in $(seq 1 30); do
            registry_answers && { started=1; break; }
            sleep 0.5
        done
        [ -n "$started" ] || { tail -n 20 /var/log/imagekit-registry.log >&2 || true; die "registry did not answer on http://$REGISTRY_ADDR/v2/"; }
    fi
    # buildah and skopeo speak plain HTTP to the loopback registry only when told.
    conf=/etc/containers/registries.conf.d/50-imagekit.conf
    if [ ! -f "$conf" ]; then
        mkdir -p "$(dirname "$conf")"
        printf '[[registry]]\nlocation = "%s"\ninsecure = true\n' "$REGISTRY_ADDR" > "$conf"
        say "marked $REGISTRY_ADDR insecure for buildah/skopeo ($conf)"
    fi
}

ensure_base_image() {
    if [ "${IMAGEKIT_BOOTSTRAP_SKIP_BASE:-}" = 1 ]; then
        return
    fi
    # `imagekit base` keeps an image of the same recipe, else makes it with mmdebstrap (~30 s): the same
    # image, the same ID, in Docker's and in buildah's storage.
    for backend in docker buildah; do
        imagekit base --tag "$BASE_TAG" --backend "$backend" --mirror "$MIRROR" >/dev/null \
            || die "imagekit base --backend $backend failed"
    done
    base_id=$(docker image inspect --format '{{.Id}}' "$BASE_TAG")
    # The same base in the registry too, for pulls by reference.
    remote="$REGISTRY_ADDR/$BASE_TAG"
    if ! skopeo inspect --tls-verify=false --raw "docker://$remote" 2>/dev/null | grep -q "$base_id"; then
        say "pushing $BASE_TAG to $remote"
        docker tag "$BASE_TAG" "$remote"
        docker push --quiet "$remote" >/dev/null || die "docker push $remote failed"
    fi
}

main() {
    [ "$(id -u)" -eq 0 ] || die "run as root (it installs packages and starts dockerd)"
    ensure_apt_packages
    ensure_binfmt
    ensure_python_package
    ensure_dockerd
    ensure_registry
    ensure_base_image
    say "ready: engine $(docker version --format '{{.Server.Version}}' 2>/dev/null), registry $REGISTRY_ADDR, base $BASE_TAG"
    say "tests: export TESTCONTAINERS_RYUK_DISABLED=true; python3 -m pytest tests"
}

main "$@"
