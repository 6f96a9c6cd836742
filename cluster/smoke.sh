#!/bin/bash
# End-to-end check of scripts/cluster.sh on this machine (root; the registry of
# scripts/bootstrap.sh on 127.0.0.1:5000 and skopeo must be there):
#
#  1. down, note the host's mounts, links and iptables rules; up; both nodes Ready
#  2. two tiny images (a static C program FROM scratch, variants a and b) pushed to the registry
#  3. an apps.kruise.io/v1beta1 StatefulSet (Parallel, InPlaceIfPossible, readiness gate
#     InPlaceUpdateReady), 2 replicas by digest, one pod on each node
#  4. image a -> b: updated in place (same pod UIDs, restartCount + 1, new image ID, logs say b)
#  5. stop-node imagekit-node-b: its pod comes back on imagekit-node-a
#  6. down leaves the host's mounts, links and iptables rules as they were before up
#  7. up again: both nodes Ready
#
# Prints one line per check and ends with 'N passed, N failed'; exit 0 only when all passed.
# SMOKE_KEEP=1 leaves the test namespace in place at the end.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CLUSTER=$ROOT/scripts/cluster.sh
REGISTRY=${IMAGEKIT_REGISTRY:-127.0.0.1:5000}
NS=imagekit-cluster-smoke
STATE=${IMAGEKIT_CLUSTER_STATE:-/var/lib/imagekit-cluster}
RUNDIR=${IMAGEKIT_CLUSTER_RUN:-/run/imagekit-cluster}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

passed=0 failed=0
ok() { passed=$((passed + 1)); printf 'ok: %s\n' "$*"; }
bad() { failed=$((failed + 1)); printf 'FAILED: %s\n' "$*"; }
check() { # DESCRIPTION CMD...
    local what=$1
    shift
    if "$@"; then ok "$what"; else bad "$what"; fi
}
finish() {
    printf '%s passed, %s failed\n' "$passed" "$failed"
    [ "$failed" -eq 0 ]
    exit $?
}
fatal() { bad "$*"; finish; }
note() { printf '  %s\n' "$*"; }

k() { "$CLUSTER" kubectl "$@"; }

# Retries CMD every second until it succeeds or SECONDS pass; prints how long it took.
wait_until() { # SECONDS CMD...
    local limit=$1 start i
    shift
    start=$(date +%s)
    for ((i = 0; i < limit; i++)); do
        if "$@" >/dev/null 2>&1; then
            WAITED=$(($(date +%s) - start))
            return 0
        fi
        sleep 1
    done
    WAITED=$(($(date +%s) - start))
    return 1
}

# What down must leave as it found: mounts, links, iptables rules. Docker's own (its bridges,
# veths and rules) are left out: containers that others start meanwhile change them.
DOCKERS='docker|DOCKER|br-[0-9a-f]{12}'
host_footprint() {
    {
        echo "# mounts under the cluster's dirs and network namespaces"
        awk '{print $5}' /proc/self/mountinfo | grep -E "^($STATE|$RUNDIR)(/|$)|^/run/netns/" | sort
        echo "# links but docker's"
        ip -o link show | awk -F': ' '{print $2}' | sed 's/@.*//' | grep -Ev "^veth|^($DOCKERS)" | sort
        echo "# veths not on a docker bridge"
        ip -o link show type veth | grep -Ev "master ($DOCKERS)" | wc -l
        echo "# the nodes' cgroups"
        ls -d /sys/fs/cgroup/*/imagekit-node-* 2>/dev/null
        echo "# iptables rules but docker's"
        for t in filter nat mangle raw; do
            iptables-save -t "$t" | grep -v '^#' | grep -Ev "$DOCKERS" | sed 's/\[[0-9]*:[0-9]*\]//'
        done
    }
}

[ "$(id -u)" -eq 0 ] || { echo "run as root" >&2; exit 3; }
command -v skopeo >/dev/null || { echo "skopeo not found: run scripts/bootstrap.sh" >&2; exit 3; }
curl -fsS -o /dev/null "http://$REGISTRY/v2/" || { echo "no registry on $REGISTRY: run scripts/bootstrap.sh" >&2; exit 3; }

# 1 -------------------------------------------------------------------------------------------
"$CLUSTER" down >"$WORK/down0.log" 2>&1 || fatal "scripts/cluster.sh down (before the test): $(tail -n1 "$WORK/down0.log")"
host_footprint >"$WORK/before"
note "before up: $(iptables-save | grep -c '^-A') iptables rules ($(grep -c '^-A' "$WORK/before") not docker's), $(mount | grep -c "$STATE") mounts under $STATE"
start=$(date +%s)
if ! "$CLUSTER" up >"$WORK/up.out" 2>"$WORK/up.err"; then
    cat "$WORK/up.err"
    fatal "scripts/cluster.sh up"
fi
ok "up in $(($(date +%s) - start))s"
kubeconfig=$(tail -n1 "$WORK/up.out")
check "up prints the kubeconfig path last ($kubeconfig)" test -s "$kubeconfig"
start=$(date +%s)
"$CLUSTER" up >"$WORK/up2.out" 2>"$WORK/up2.err"
check "second up says it is already up ($(($(date +%s) - start))s)" grep -q "already up" "$WORK/up2.err"
for n in imagekit-node-a imagekit-node-b; do
    check "node $n Ready" test "$(k get node "$n" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" = True
done
check "StorageClasses imagekit-local-ssd and imagekit-shared" k get storageclass imagekit-local-ssd imagekit-shared -o name

# 2 -------------------------------------------------------------------------------------------
declare -A IMAGE
for v in a b; do
    gcc -static -Os -s -DVARIANT="\"$v\"" -o "$WORK/hello" "$ROOT/cluster/images/hello.c" || fatal "gcc hello.c"
    "$ROOT/cluster/images/oci-image.sh" "$WORK/hello" "$REGISTRY/imagekit-cluster-smoke/hello:$v" "$WORK/hello-$v.tar" >/dev/null ||
        fatal "packing hello $v"
    skopeo copy --quiet --dest-tls-verify=false "oci-archive:$WORK/hello-$v.tar" \
        "docker://$REGISTRY/imagekit-cluster-smoke/hello:$v" || fatal "skopeo copy hello $v to $REGISTRY"
    digest=$(skopeo inspect --tls-verify=false --format '{{.Digest}}' "docker://$REGISTRY/imagekit-cluster-smoke/hello:$v") ||
        fatal "skopeo inspect hello $v"
    IMAGE[$v]=$REGISTRY/imagekit-cluster-smoke/hello@$digest
done
ok "test images pushed: ${IMAGE[a]}, ${IMAGE[b]}"

# 3 -------------------------------------------------------------------------------------------
k delete namespace "$NS" --ignore-not-found --wait=true >/dev/null 2>&1
k create namespace "$NS" >/dev/null || fatal "create namespace $NS"
cat >"$WORK/sts.yaml" <<EOF
apiVersion: apps.kruise.io/v1beta1
kind: StatefulSet
metadata:
  name: hello
  namespace: $NS
spec:
  replicas: 2
  serviceName: hello
  podManagementPolicy: Parallel
  selector:
    matchLabels: {app: hello}
  updateStrategy:
    type: RollingUpdate
    rollingUpdate:
      podUpdatePolicy: InPlaceIfPossible
      maxUnavailable: 2
  template:
    metadata:
      labels: {app: hello}
    spec:
      readinessGates:
      - conditionType: InPlaceUpdateReady
      terminationGracePeriodSeconds: 5
      topologySpreadConstraints:
      - maxSkew: 1
        topologyKey: kubernetes.io/hostname
        whenUnsatisfiable: DoNotSchedule
        labelSelector:
          matchLabels: {app: hello}
      containers:
      - name: hello
        image: ${IMAGE[a]}
        ports:
        - {name: hello, containerPort: 8080}
        readinessProbe:
          tcpSocket: {port: 8080}
          periodSeconds: 2
EOF
k apply -f "$WORK/sts.yaml" >/dev/null || fatal "create the Advanced StatefulSet"
ok "apps.kruise.io/v1beta1 StatefulSet created"
ready_pods() { # N: N pods Ready, each on its own node
    local want=$1 lines
    lines=$(k -n "$NS" get pods -l app=hello -o jsonpath='{range .items[*]}{.spec.nodeName} {.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}')
    [ "$(echo "$lines" | grep -c ' True$')" -eq "$want" ]
}
if wait_until 180 ready_pods 2; then
    ok "2 pods Ready after ${WAITED}s"
else
    k -n "$NS" get pods -o wide
    k -n "$NS" describe pods | tail -n 40
    fatal "2 pods Ready within 180s"
fi
k -n "$NS" get pods -o wide
nodes=$(k -n "$NS" get pods -l app=hello -o jsonpath='{range .items[*]}{.spec.nodeName}{"\n"}{end}' | sort -u | tr '\n' ' ')
check "one pod on each node ($nodes)" test "$nodes" = "imagekit-node-a imagekit-node-b "

# pod to pod across the two bridges, and no route off the machine (from inside hello-0's
# network namespace, with the host's bash)
pod_pid() { # NODE POD
    local id
    id=$("$CLUSTER" crictl "$1" pods --name "$2" --namespace "$NS" --state ready -q | head -n1)
    "$CLUSTER" crictl "$1" inspectp -o go-template --template '{{.info.pid}}' "$id"
}
ip_a=$(k -n "$NS" get pod hello-0 -o jsonpath='{.status.podIP}')
ip_b=$(k -n "$NS" get pod hello-1 -o jsonpath='{.status.podIP}')
node_0=$(k -n "$NS" get pod hello-0 -o jsonpath='{.spec.nodeName}')
pid_0=$(pod_pid "$node_0" hello-0)
answer=$(nsenter -t "$pid_0" -n timeout 5 bash -c "exec 3<>/dev/tcp/$ip_b/8080 && cat <&3" 2>&1)
check "hello-0 ($ip_a) reaches hello-1 ($ip_b:8080) on the other node: ${answer:-no answer}" grep -q "variant a" <<<"$answer"
check "hello-0 has no route off the machine" test -n "$(nsenter -t "$pid_0" -n ip route get 192.0.2.1 2>&1 | grep -i unreachable)"

# 4 -------------------------------------------------------------------------------------------
pod_facts() { # name uid restartCount imageID, one pod a line
    k -n "$NS" get pods -l app=hello -o jsonpath='{range .items[*]}{.metadata.name} {.metadata.uid} {.status.containerStatuses[0].restartCount} {.status.containerStatuses[0].imageID}{"\n"}{end}' | sort
}
pod_facts >"$WORK/facts-a"
k -n "$NS" patch statefulsets.apps.kruise.io hello --type json \
    -p "[{\"op\":\"replace\",\"path\":\"/spec/template/spec/containers/0/image\",\"value\":\"${IMAGE[b]}\"}]" >/dev/null ||
    fatal "patch the StatefulSet's image"
updated() {
    local s
    s=$(k -n "$NS" get statefulsets.apps.kruise.io hello -o jsonpath='{.status.updatedReadyReplicas} {.status.readyReplicas} {.status.observedGeneration} {.metadata.generation}')
    set -- $s
    [ "${1:-0}" = 2 ] && [ "${2:-0}" = 2 ] && [ "${3:-}" = "${4:-x}" ]
}
if wait_until 180 updated; then ok "in-place update to b done after ${WAITED}s"; else bad "in-place update within 180s"; fi
pod_facts >"$WORK/facts-b"
note "before: $(tr '\n' ';' <"$WORK/facts-a")"
note "after:  $(tr '\n' ';' <"$WORK/facts-b")"
while read -r name uid restarts image_id; do
    read -r _ uid_b restarts_b image_id_b < <(grep "^$name " "$WORK/facts-b")
    check "$name kept its UID" test "$uid" = "${uid_b:-}"
    check "$name restartCount $restarts -> ${restarts_b:-?}" test "${restarts_b:--1}" -eq $((restarts + 1))
    check "$name image ID changed" test "$image_id" != "${image_id_b:-$image_id}"
    check "$name runs variant b (kubectl logs)" grep -q "variant b" < <(k -n "$NS" logs "$name")
done <"$WORK/facts-a"

# volumes: one pod with a claim of each class; the claims bind to a local PV of the pod's node
# and a shared PV; once the claims are deleted the volumes are Available again (pv-recycler)
cat >"$WORK/vol.yaml" <<EOF
apiVersion: apps.kruise.io/v1beta1
kind: StatefulSet
metadata:
  name: vol
  namespace: $NS
spec:
  replicas: 1
  serviceName: vol
  selector:
    matchLabels: {app: vol}
  template:
    metadata:
      labels: {app: vol}
    spec:
      terminationGracePeriodSeconds: 5
      nodeSelector: {kubernetes.io/hostname: imagekit-node-a}
      containers:
      - name: hello
        image: ${IMAGE[a]}
        volumeMounts:
        - {name: ssd, mountPath: /ssd}
        - {name: shared, mountPath: /shared}
  volumeClaimTemplates:
  - metadata: {name: ssd}
    spec:
      storageClassName: imagekit-local-ssd
      accessModes: [ReadWriteOnce]
      resources: {requests: {storage: 1Gi}}
  - metadata: {name: shared}
    spec:
      storageClassName: imagekit-shared
      accessModes: [ReadWriteOnce]
      resources: {requests: {storage: 1Gi}}
EOF
k apply -f "$WORK/vol.yaml" >/dev/null || fatal "create the StatefulSet with volumes"
vol_running() { [ "$(k -n "$NS" get pod vol-0 -o jsonpath='{.status.phase}' 2>/dev/null)" = Running ]; }
if wait_until 120 vol_running; then
    ok "pod with a local-ssd and a shared claim Running after ${WAITED}s"
else
    k -n "$NS" describe pod vol-0 | tail -n 20
    bad "pod with volumes Running"
fi
pv_ssd=$(k -n "$NS" get pvc ssd-vol-0 -o jsonpath='{.spec.volumeName}')
pv_shared=$(k -n "$NS" get pvc shared-vol-0 -o jsonpath='{.spec.volumeName}')
check "ssd claim bound to a local PV of imagekit-node-a ($pv_ssd)" grep -q '^local-ssd-imagekit-node-a-' <<<"$pv_ssd"
check "shared claim bound to a shared PV ($pv_shared)" grep -q '^shared-' <<<"$pv_shared"
k -n "$NS" delete statefulsets.apps.kruise.io vol --wait=true >/dev/null
wait_until 60 test -z "$(k -n "$NS" get pod vol-0 --ignore-not-found -o name)"
k -n "$NS" delete pvc ssd-vol-0 shared-vol-0 --wait=true >/dev/null
available() { [ "$(k get pv "$pv_ssd" "$pv_shared" -o jsonpath='{.items[*].status.phase}')" = "Available Available" ]; }
if wait_until 60 available; then
    ok "$pv_ssd and $pv_shared Available again ${WAITED}s after their claims were deleted"
else
    bad "released volumes Available again: $(k get pv "$pv_ssd" "$pv_shared" --no-headers 2>&1)"
fi

# 5 -------------------------------------------------------------------------------------------
lost=$(k -n "$NS" get pods -l app=hello --field-selector spec.nodeName=imagekit-node-b -o jsonpath='{.items[0].metadata.name}')
lost_uid=$(k -n "$NS" get pod "$lost" -o jsonpath='{.metadata.uid}')
"$CLUSTER" stop-node imagekit-node-b >"$WORK/stop.log" 2>&1 || { cat "$WORK/stop.log"; fatal "stop-node imagekit-node-b"; }
check "stop-node deleted Node imagekit-node-b" test -z "$(k get node imagekit-node-b --ignore-not-found -o name)"
moved() {
    local uid node ready
    read -r uid node ready < <(k -n "$NS" get pod "$lost" -o jsonpath='{.metadata.uid} {.spec.nodeName} {.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)
    [ -n "$uid" ] && [ "$uid" != "$lost_uid" ] && [ "$node" = imagekit-node-a ] && [ "$ready" = True ]
}
if wait_until 150 moved; then
    ok "$lost recreated on imagekit-node-a and Ready ${WAITED}s after its node was deleted (pod garbage collection, no force delete)"
else
    note "$lost not moved after ${WAITED}s: $(k -n "$NS" get pod "$lost" -o wide --no-headers 2>&1)"
    k -n "$NS" delete pod "$lost" --force --grace-period=0 >/dev/null 2>&1
    if wait_until 90 moved; then
        ok "$lost recreated on imagekit-node-a ${WAITED}s after a force delete"
    else
        bad "$lost recreated on imagekit-node-a"
    fi
fi

# 6 -------------------------------------------------------------------------------------------
"$CLUSTER" down >"$WORK/down.log" 2>&1 || { cat "$WORK/down.log"; bad "scripts/cluster.sh down"; }
host_footprint >"$WORK/after"
if diff "$WORK/before" "$WORK/after" >"$WORK/footprint.diff"; then
    ok "down left mounts, links, cgroups and iptables rules as before up ($(iptables-save | grep -c '^-A') rules, $(grep -c '^-A' "$WORK/after") not docker's)"
else
    cat "$WORK/footprint.diff"
    bad "down left the host as before up"
fi
check "no process of the cluster left" test -z "$(pgrep -f "$RUNDIR/|$STATE/|/imagekit/cluster/" || true)"

# 7 -------------------------------------------------------------------------------------------
start=$(date +%s)
if "$CLUSTER" up >"$WORK/up3.out" 2>"$WORK/up3.err"; then
    ok "up again in $(($(date +%s) - start))s"
    for n in imagekit-node-a imagekit-node-b; do
        check "node $n Ready again" test "$(k get node "$n" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" = True
    done
    wait_until 120 ready_pods 2 && ok "StatefulSet pods Ready again after ${WAITED}s" || bad "StatefulSet pods Ready again"
else
    cat "$WORK/up3.err"
    bad "up again"
fi
[ -n "${SMOKE_KEEP:-}" ] || k delete namespace "$NS" --wait=false >/dev/null 2>&1
finish
