#!/bin/bash
# Pack one static binary into an OCI image archive FROM scratch, byte-for-byte reproducible:
#
#   cluster/images/oci-image.sh BINARY IMAGE_NAME OUT.tar
#
# The image runs /BINARY_BASENAME as its entrypoint. The archive (oci-layout, index.json with
# the io.containerd.image.name annotation set to IMAGE_NAME) is what `ctr images import` and
# `skopeo copy oci-archive:OUT.tar docker://...` read. Prints the manifest digest on stdout.
set -euo pipefail

[ $# -eq 3 ] || { echo "usage: $0 BINARY IMAGE_NAME OUT.tar" >&2; exit 2; }
binary=$1 name=$2 out=$3
prog=$(basename "$binary")

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/rootfs" "$work/oci/blobs/sha256"
install -m 0755 "$binary" "$work/rootfs/$prog"

sha() { sha256sum "$1" | cut -d' ' -f1; }
blob() { # FILE -> moves it to blobs/sha256/<digest>, prints the digest
    local d
    d=$(sha "$1")
    mv "$1" "$work/oci/blobs/sha256/$d"
    printf '%s' "$d"
}

tar --create --file "$work/layer.tar" --directory "$work/rootfs" --sort=name --mtime=@0 \
    --owner=0 --group=0 --numeric-owner --format=posix --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime "$prog"
layer_size=$(stat -c %s "$work/layer.tar")
layer=$(blob "$work/layer.tar")

printf '{"architecture":"amd64","os":"linux","config":{"Entrypoint":["/%s"],"WorkingDir":"/"},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]},"history":[{"created_by":"cluster/images/oci-image.sh %s"}]}' \
    "$prog" "$layer" "$prog" > "$work/config.json"
config_size=$(stat -c %s "$work/config.json")
config=$(blob "$work/config.json")

printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:%s","size":%s}]}' \
    "$config" "$config_size" "$layer" "$layer_size" > "$work/manifest.json"
manifest_size=$(stat -c %s "$work/manifest.json")
manifest=$(blob "$work/manifest.json")

printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"annotations":{"io.containerd.image.name":"%s","org.opencontainers.image.ref.name":"%s"}}]}' \
    "$manifest" "$manifest_size" "$name" "${name##*:}" > "$work/oci/index.json"
printf '{"imageLayoutVersion":"1.0.0"}' > "$work/oci/oci-layout"

tar --create --file "$out" --directory "$work/oci" --sort=name --mtime=@0 --owner=0 --group=0 \
    --numeric-owner oci-layout index.json blobs
printf 'sha256:%s\n' "$manifest"
