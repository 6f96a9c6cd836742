#!/bin/sh
# The buildah backend's only contact with buildah (and skopeo, which loads into its storage): one subcommand per operation.
# Called by imagekit/build/buildah.py; usable by hand for debugging:
#   sh imagekit/build/buildah.sh build CONTEXT Containerfile TAG [--timestamp N] [--no-cache] [--build-arg K=V]...
set -eu

usage() {
    echo "usage: buildah.sh pull REF | probe IMAGE SCRIPT | build CONTEXT FILE TAG [OPTIONS] | load OCI_LAYOUT TAG | inspect REF | images | read IMAGE PATH | tag IMAGE REF | rmi REF... | manifest LIST IMAGE... | listed REF | push IMAGE DEST DIGESTFILE TLS_VERIFY [AUTHFILE]" >&2
    exit 2
}

[ $# -ge 1 ] || usage
command=$1
shift

case "$command" in
pull)
    # No public registry is reachable here: a local Docker engine is the usual source.
    buildah pull --quiet "$1" 2>/dev/null || buildah pull --quiet "docker-daemon:$1"
    ;;
probe)
    image=$1
    script=$2
    container=$(buildah from --pull-never --quiet "$image")
    trap 'buildah rm "$container" >/dev/null 2>&1 || true' EXIT
    buildah run --network none --user 0:0 "$container" -- python3 -c "$script"
    ;;
build)
    context=$1
    file=$2
    tag=$3
    shift 3
    # --layers: cache each instruction; --pull-never: the base is local (nothing can be pulled);
    # --identity-label=false: no label that changes with buildah's version. The last line printed
    # is the image's ID (buildah.py reads it).
    buildah bud --layers --pull-never --identity-label=false --format oci \
        -f "$context/$file" -t "$tag" "$@" "$context"
    ;;
load)
    # An image imagekit assembled (an OCI layout), into buildah's containers-storage.
    skopeo copy --quiet "oci:$1:latest" "containers-storage:$2"
    ;;
inspect)
    buildah inspect --type image "$1"
    ;;
images)
    # Every image (intermediate ones of `build --layers` too), one line per name: ID NAME (<none> for none).
    buildah images --all --no-trunc --format '{{.ID}} {{.Name}}'
    ;;
read)
    # One file of an image, from its mounted file system (nothing runs in it); exit 3 when it has none.
    container=$(buildah from --pull-never --quiet "$1")
    trap 'buildah umount "$container" >/dev/null 2>&1 || true; buildah rm "$container" >/dev/null 2>&1 || true' EXIT
    root=$(buildah mount "$container")
    if [ -f "$root$2" ]; then cat "$root$2"; else exit 3; fi
    ;;
tag)
    buildah tag "$1" "$2"
    ;;
manifest)
    # A manifest list named LIST over local images (one per platform), in place of any image or list so named.
    list=$1
    shift
    buildah manifest rm "$list" >/dev/null 2>&1 || buildah rmi "$list" >/dev/null 2>&1 || true
    buildah manifest create "$list" >/dev/null
    for image in "$@"; do
        buildah manifest add "$list" "containers-storage:$image" >/dev/null
    done
    ;;
listed)
    # The manifest list REF names, as JSON; exit 3 when REF is no list (an image, or nothing).
    buildah manifest inspect "$1" 2>/dev/null || exit 3
    ;;
rmi)
    for ref in "$@"; do
        buildah rmi "$ref" >/dev/null 2>&1 || true
    done
    ;;
push)
    image=$1
    destination=$2
    digestfile=$3
    tls_verify=$4
    authfile=${5:-}
    if [ -n "$authfile" ]; then
        buildah push --tls-verify="$tls_verify" --authfile "$authfile" --digestfile "$digestfile" "$image" "docker://$destination"
    else
        buildah push --tls-verify="$tls_verify" --digestfile "$digestfile" "$image" "docker://$destination"
    fi
    ;;
*)
    usage
    ;;
esac
