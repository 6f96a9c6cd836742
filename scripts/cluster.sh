#!/bin/bash
# A local Kubernetes 1.34 + OpenKruise 1.9 cluster on this one machine, every program built with
# `go build` from the Go modules under cluster/modules/ (nothing downloaded but Go modules and
# Debian packages; no image pulled from outside: the pod sandbox image is made here).
#
#   scripts/cluster.sh build              build (or find cached) binaries; no go run when cached
#   scripts/cluster.sh crd                build (or find cached), then print the path of Kruise's StatefulSet
#                                         CRD from its module, for `deploy validate` (IMAGEKIT_KRUISE_CRD)
#   scripts/cluster.sh up                 start everything (idempotent); last stdout line: kubeconfig
#   scripts/cluster.sh status             which components run, which nodes are Ready
#   scripts/cluster.sh kubectl ARGS...    the built kubectl against the cluster
#   scripts/cluster.sh crictl NODE ARGS...  the built crictl against that node's containerd
#   scripts/cluster.sh stop-node NAME     lose a node: its kubelet, containerd and pods stop, Node deleted
#   scripts/cluster.sh down [--purge]     stop everything, leave no mount, bridge or iptables rule
#                                         (--purge also deletes state and logs; binaries stay cached)
#
# Layout: one etcd, kube-apiserver, kube-controller-manager, kube-scheduler, and two nodes
# (imagekit-node-a, imagekit-node-b), each a kubelet with its own containerd, root dirs, cgroup root,
# Linux bridge and pod CIDR; kruise-manager runs outside the cluster with a kubeconfig.
# See cluster/README.md.
#
# Exit codes: 0 ok; 1 status found something not running; 2 bad usage; 3 environment problem
# (one line on stderr naming what failed and its log file).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MODULES=$ROOT/cluster/modules
IMAGES_SRC=$ROOT/cluster/images

STATE=${IMAGEKIT_CLUSTER_STATE:-/var/lib/imagekit-cluster}
RUNDIR=${IMAGEKIT_CLUSTER_RUN:-/run/imagekit-cluster}
LOGDIR=${IMAGEKIT_CLUSTER_LOGS:-/var/log/imagekit-cluster}
CACHE_ROOT=${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/imagekit/cluster
PKI=$STATE/pki
KUBECONFIG_PATH=$STATE/kubeconfig
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH

NODES="imagekit-node-a imagekit-node-b"
APISERVER_PORT=6443
APISERVER=https://127.0.0.1:$APISERVER_PORT
ETCD_CLIENT_PORT=12379
ETCD_PEER_PORT=12380
CM_PORT=10257
SCHED_PORT=10259
KRUISE_WEBHOOK_PORT=9876
KRUISE_HEALTH_ADDR=127.0.0.1:18000
KRUISE_METRICS_ADDR=127.0.0.1:18080
CLUSTER_CIDR=10.244.0.0/16
SERVICE_CIDR=10.96.0.0/16
SERVICE_APISERVER_IP=10.96.0.1
REGISTRY=${IMAGEKIT_REGISTRY:-127.0.0.1:5000}
PAUSE_NAME=imagekit.local/pause
LOCAL_PVS_PER_NODE=8
LOCAL_PV_SIZE=10Gi
SHARED_PVS=8
SHARED_PV_SIZE=10Gi
IPT_CHAIN=IMAGEKIT-CLUSTER
STARTED=0
APT_PACKAGES="containerd runc containernetworking-plugins openssl iptables iproute2 gcc libc6-dev curl util-linux mount"

# ---------------------------------------------------------------------------------------------
say() { printf 'cluster: %s\n' "$*" >&2; }
die() { printf 'cluster: error: %s\n' "$*" >&2; exit 3; }
usage() {
    sed -n '2,/^# Exit codes/p' "${BASH_SOURCE[0]}" | sed -e 's/^# \{0,1\}//' -e '/^Exit codes/,$d' >&2
    exit 2
}
need_root() { [ "$(id -u)" -eq 0 ] || die "run as root: $1 needs it"; }

# Per-node facts: index, bridge, pod subnet, node IP (the bridge's address), ports, dirs.
node_index() {
    case $1 in
        imagekit-node-a) echo 0 ;;
        imagekit-node-b) echo 1 ;;
        *) return 1 ;;
    esac
}
node_bridge() { echo "ik-br-${1##*-}"; }
node_subnet() { echo "10.244.$(node_index "$1").0/24"; }
node_ip() { echo "10.244.$(node_index "$1").1"; }
node_healthz_port() { echo $((10248 + 100 * $(node_index "$1"))); }
node_dir() { echo "$STATE/nodes/$1"; }
node_run() { echo "$RUNDIR/$1"; }
node_sock() { echo "$(node_run "$1")/containerd.sock"; }

# ---------------------------------------------------------------------------------------------
# Binaries: built once per set of pins, cached under $CACHE_ROOT/<key>/bin.
module_version() { # MODULE_DIR MODULE_PATH -> version required in its go.mod
    awk -v m="$2" '$1 == m { print $2; exit } $1 == "require" && $2 == m { print $3; exit }' "$1/go.mod"
}
K8S_VERSION=$(module_version "$MODULES/kubernetes" k8s.io/kubernetes)
K8S_MINOR=$(echo "$K8S_VERSION" | cut -d. -f2)
K8S_LDFLAGS="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    K8S_LDFLAGS="$K8S_LDFLAGS -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$K8S_MINOR"
    K8S_LDFLAGS="$K8S_LDFLAGS -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done
OTHER_LDFLAGS="-s -w"
BINARIES="kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet etcd etcdctl kruise-manager crictl"

cache_key() {
    {
        for m in kubernetes etcd kruise cri-tools; do
            cat "$MODULES/$m/go.mod" "$MODULES/$m/go.sum"
        done
        printf '%s\n%s\n%s\n' "$K8S_LDFLAGS" "$OTHER_LDFLAGS" "recipe 1"
    } | sha256sum | cut -c1-16
}
BIN_KEY=$(cache_key)
BIN=$CACHE_ROOT/$BIN_KEY/bin
KRUISE_CONFIG=$CACHE_ROOT/$BIN_KEY/kruise

binaries_present() {
    local b
    for b in $BINARIES; do [ -x "$BIN/$b" ] || return 1; done
    [ -s "$KRUISE_CONFIG/crds.yaml" ] && [ -s "$KRUISE_CONFIG/webhooks.yaml" ]
}

timed_go_build() { # LABEL MODULE LDFLAGS OUT PACKAGES...
    local label=$1 module=$2 ldflags=$3 out=$4 start
    shift 4
    start=$(date +%s)
    say "go build $label (log: $LOGDIR/build.log)"
    printf '\n== %s: go build %s (%s)\n' "$(date -u +%FT%TZ)" "$label" "$module" >>"$LOGDIR/build.log"
    if ! (cd "$MODULES/$module" && go build -trimpath -ldflags="$ldflags" -o "$out" "$@") >>"$LOGDIR/build.log" 2>&1; then
        die "go build $label failed: see $LOGDIR/build.log"
    fi
    printf '%s: %ss\n' "$label" $(($(date +%s) - start)) | tee -a "$LOGDIR/build.log" >>"$BUILD_TIMES"
}

cmd_build() {
    mkdir -p "$LOGDIR"
    if binaries_present; then
        say "binaries cached in $BIN (Kubernetes $K8S_VERSION)"
        return
    fi
    command -v go >/dev/null || die "go not found: the binaries are built with go build (not cached in $BIN)"
    local tmp=$CACHE_ROOT/$BIN_KEY.tmp.$$ kruise_dir
    rm -rf "$tmp" && mkdir -p "$tmp/bin" "$tmp/kruise"
    BUILD_TIMES=$tmp/build-times.txt
    trap 'rm -rf "$tmp"' EXIT
    timed_go_build "Kubernetes $K8S_VERSION" kubernetes "$K8S_LDFLAGS" "$tmp/bin/" \
        k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
        k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl k8s.io/kubernetes/cmd/kubelet
    timed_go_build "etcd $(module_version "$MODULES/etcd" go.etcd.io/etcd/server/v3)" etcd "$OTHER_LDFLAGS" \
        "$tmp/bin/etcd" go.etcd.io/etcd/server/v3
    timed_go_build etcdctl etcd "$OTHER_LDFLAGS" "$tmp/bin/etcdctl" go.etcd.io/etcd/etcdctl/v3
    timed_go_build "kruise-manager $(module_version "$MODULES/kruise" github.com/openkruise/kruise)" kruise \
        "$OTHER_LDFLAGS" "$tmp/bin/kruise-manager" github.com/openkruise/kruise
    timed_go_build "crictl $(module_version "$MODULES/cri-tools" sigs.k8s.io/cri-tools)" cri-tools \
        "$OTHER_LDFLAGS" "$tmp/bin/crictl" sigs.k8s.io/cri-tools/cmd/crictl
    kruise_dir=$(cd "$MODULES/kruise" && go list -m -f '{{.Dir}}' github.com/openkruise/kruise) ||
        die "go list -m github.com/openkruise/kruise failed"
    render_kruise_config "$kruise_dir" "$tmp/bin/kubectl" "$tmp/kruise"
    rm -rf "${BIN%/bin}" && mv "$tmp" "${BIN%/bin}"
    trap - EXIT
    say "binaries built into $BIN"
}

# Kruise's CRDs (with the conversion webhooks its own install enables) and its webhook
# configurations, rendered once from the module's config/ the way its config/default does
# (namespace kruise-system, names prefixed kruise-), without the manager Deployment and RBAC.
render_kruise_config() { # MODULE_DIR KUBECTL OUT_DIR
    local src=$1 kubectl=$2 out=$3 work
    work=$(mktemp -d)
    cp -r "$src/config/crd" "$src/config/webhook" "$work/" && chmod -R u+w "$work"
    cat >"$work/kustomization.yaml" <<'EOF'
namespace: kruise-system
namePrefix: kruise-
resources:
- crd
- webhook
EOF
    "$kubectl" kustomize "$work" >"$work/all.yaml" 2>>"$LOGDIR/build.log" ||
        die "kubectl kustomize of kruise's config/ failed: see $LOGDIR/build.log"
    split_yaml_by_kind "$work/all.yaml" CustomResourceDefinition >"$out/crds.yaml"
    split_yaml_by_kind "$work/all.yaml" 'MutatingWebhookConfiguration|ValidatingWebhookConfiguration' >"$out/webhooks.yaml"
    rm -rf "$work"
    [ -s "$out/crds.yaml" ] && [ -s "$out/webhooks.yaml" ] || die "kruise's config/ gave no CRDs or webhooks: see $LOGDIR/build.log"
}

# Kruise's Advanced StatefulSet CRD alone, from the CRDs rendered out of its module, with a SOURCE.txt naming
# the module version (imagekit_deploy.schemas reports it): what `deploy validate --kruise-crd` checks against.
cmd_crd() {
    cmd_build >&2
    local dir=$KRUISE_CONFIG/statefulset-crd version
    if [ ! -s "$dir/apps.kruise.io_statefulsets.yaml" ]; then
        mkdir -p "$dir.tmp"
        awk '
            function flush() { if (doc ~ /\n  name: statefulsets\.apps\.kruise\.io\n/) printf "%s", doc; doc = "" }
            /^---/ { flush(); next }
            { doc = doc $0 "\n" }
            END { flush() }' "$KRUISE_CONFIG/crds.yaml" >"$dir.tmp/apps.kruise.io_statefulsets.yaml"
        [ -s "$dir.tmp/apps.kruise.io_statefulsets.yaml" ] ||
            die "no statefulsets.apps.kruise.io CRD in $KRUISE_CONFIG/crds.yaml"
        version=$(module_version "$MODULES/kruise" github.com/openkruise/kruise)
        printf 'module: github.com/openkruise/kruise\ncommit: %s\n' "$version" >"$dir.tmp/SOURCE.txt"
        rm -rf "$dir" && mv "$dir.tmp" "$dir"
    fi
    echo "$dir/apps.kruise.io_statefulsets.yaml"
}

split_yaml_by_kind() { # FILE KIND_REGEX: the documents of a multi-document YAML whose kind matches
    awk -v want="^(${2})\$" '
        function flush() { if (doc != "" && kind ~ want) printf "---\n%s", doc; doc = ""; kind = "" }
        /^---/ { flush(); next }
        /^kind: / { kind = $2 }
        { doc = doc $0 "\n" }
        END { flush() }' "$1"
}

# ---------------------------------------------------------------------------------------------
# Processes: started with setsid, pid files under $RUNDIR/pids, logs under $LOGDIR.
pidfile() { echo "$RUNDIR/pids/$1.pid"; }

running() { # NAME: the process of that pid file is alive and is the program it names
    local f pid
    f=$(pidfile "$1")
    [ -f "$f" ] || return 1
    pid=$(head -n1 "$f")
    [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
    local cmdline mark
    cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
    mark=$(sed -n 2p "$f")
    [[ $cmdline == *"$mark"* ]]
}

# Starts NAME unless it runs already with the same command line; one that runs with another
# (new flags, binaries of other pins) is restarted. MARK is a part of its command line that
# tells the process is ours (against a reused pid).
ensure_daemon() { # NAME MARK DESCRIPTION CMD...
    local name=$1 mark=$2 what=$3
    shift 3
    if running "$name"; then
        [ "$(sed -n 3p "$(pidfile "$name")")" != "$*" ] || return 0
        say "restarting $name: its command line changed"
        stop_daemon "$name"
    fi
    say "starting $name${what:+ $what} (log: $LOGDIR/$name.log)"
    mkdir -p "$RUNDIR/pids" "$LOGDIR"
    printf '\n== %s: %s\n' "$(date -u +%FT%TZ)" "$*" >>"$LOGDIR/$name.log"
    setsid "$@" >>"$LOGDIR/$name.log" 2>&1 </dev/null 9>&- &
    printf '%s\n%s\n%s\n' "$!" "$mark" "$*" >"$(pidfile "$name")"
    STARTED=$((STARTED + 1))
}

alive() { # PID: exists and is not a zombie (our daemons' parent is init, which may reap late)
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    [ "${stat%% *}" != Z ]
}

stop_pid() { # PID [SECONDS]: TERM, then KILL after SECONDS
    local pid=$1 wait=${2:-10} i
    kill -TERM "$pid" 2>/dev/null || return 0
    for ((i = 0; i < wait * 20; i++)); do
        alive "$pid" || return 0
        sleep 0.05
    done
    kill -KILL "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do alive "$pid" || return 0; sleep 0.05; done
}

stop_daemon() { # NAME [SECONDS]
    if running "$1"; then
        say "stopping $1"
        stop_pid "$(head -n1 "$(pidfile "$1")")" "${2:-10}"
    fi
    rm -f "$(pidfile "$1")"
}

# Retries CMD until it succeeds. WHAT is the daemon's name when it has a pid file: its exit
# ends the wait at once.
wait_for() { # WHAT LOG SECONDS CMD...
    local what=$1 log=$2 seconds=$3 i
    shift 3
    for ((i = 0; i < seconds * 4; i++)); do
        "$@" >/dev/null 2>&1 && return 0
        if [ -f "$(pidfile "$what")" ] && ! running "$what"; then
            die "$what exited: see $log ($(grep -v '^$' "$log" | tail -n1 | cut -c1-200))"
        fi
        sleep 0.25
    done
    die "$what not ready after ${seconds}s: see $log"
}

kc() { "$BIN/kubectl" --kubeconfig "$KUBECONFIG_PATH" "$@"; }

# Writes stdin to FILE only when it differs (a rewrite would wake up containerd's watch on its
# CNI config). Returns 0 when FILE changed, 1 when it was already so.
write_if_changed() { # FILE
    local tmp=$1.new
    cat >"$tmp"
    if cmp -s "$tmp" "$1"; then
        rm -f "$tmp"
        return 1
    fi
    mv "$tmp" "$1"
}

# ---------------------------------------------------------------------------------------------
# Host prerequisites.
ensure_apt_packages() {
    local missing="" p status rc=0
    for p in $APT_PACKAGES; do
        status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
        case $status in *" installed") ;; *) missing="$missing $p" ;; esac
    done
    [ -n "$missing" ] || return 0
    say "installing apt packages:$missing"
    # The package scripts must not start Debian's own containerd: each node runs its own.
    local policy=/usr/sbin/policy-rc.d created=""
    if [ ! -e $policy ]; then printf '#!/bin/sh\nexit 101\n' >$policy && chmod 755 $policy && created=1; fi
    { DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing; } >>"$LOGDIR/apt.log" 2>&1 || rc=$?
    [ -z "$created" ] || rm -f $policy
    [ $rc -eq 0 ] || die "apt-get install$missing failed (exit $rc): see $LOGDIR/apt.log"
}

# ---------------------------------------------------------------------------------------------
# Certificates and kubeconfigs (openssl; EC P-256 keys; ten years).
sign_cert() { # NAME SUBJECT EXTENSIONS: $PKI/NAME.key and NAME.crt signed by the cluster CA
    local name=$1 subj=$2 ext=$3
    [ -s "$PKI/$name.crt" ] && return 0
    openssl ecparam -name prime256v1 -genkey -noout -out "$PKI/$name.key" 2>>"$LOGDIR/pki.log"
    printf '%s\n' "$ext" >"$PKI/$name.ext"
    openssl req -new -key "$PKI/$name.key" -subj "$subj" 2>>"$LOGDIR/pki.log" |
        openssl x509 -req -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -set_serial "0x$(openssl rand -hex 16)" \
            -days 3650 -extfile "$PKI/$name.ext" -out "$PKI/$name.crt" 2>>"$LOGDIR/pki.log" ||
        die "openssl could not sign $name: see $LOGDIR/pki.log"
    rm -f "$PKI/$name.ext"
}

write_kubeconfig() { # FILE USER CERT_NAME
    local tmp=$1.tmp
    cat >"$tmp" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: imagekit
  cluster:
    server: $APISERVER
    certificate-authority-data: $(base64 -w0 "$PKI/ca.crt")
users:
- name: $2
  user:
    client-certificate-data: $(base64 -w0 "$PKI/$3.crt")
    client-key-data: $(base64 -w0 "$PKI/$3.key")
contexts:
- name: imagekit
  context:
    cluster: imagekit
    user: $2
current-context: imagekit
EOF
    mv "$tmp" "$1"
}

ensure_pki() {
    mkdir -p "$PKI" && chmod 700 "$PKI"
    if [ ! -s "$PKI/ca.crt" ]; then
        say "making the cluster CA and certificates ($PKI)"
        openssl ecparam -name prime256v1 -genkey -noout -out "$PKI/ca.key" 2>>"$LOGDIR/pki.log"
        openssl req -x509 -new -key "$PKI/ca.key" -subj "/CN=imagekit-cluster-ca" -days 3650 \
            -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" \
            -out "$PKI/ca.crt" 2>>"$LOGDIR/pki.log" || die "openssl could not make the CA: see $LOGDIR/pki.log"
    fi
    # The aggregation layer's front proxy has a CA of its own, as kubeadm makes it.
    if [ ! -s "$PKI/front-proxy-ca.crt" ]; then
        openssl ecparam -name prime256v1 -genkey -noout -out "$PKI/front-proxy-ca.key" 2>>"$LOGDIR/pki.log"
        openssl req -x509 -new -key "$PKI/front-proxy-ca.key" -subj "/CN=imagekit-cluster-front-proxy-ca" -days 3650 \
            -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" \
            -out "$PKI/front-proxy-ca.crt" 2>>"$LOGDIR/pki.log" || die "openssl could not make the front proxy CA: see $LOGDIR/pki.log"
    fi
    if [ ! -s "$PKI/front-proxy-client.crt" ]; then
        openssl ecparam -name prime256v1 -genkey -noout -out "$PKI/front-proxy-client.key" 2>>"$LOGDIR/pki.log"
        printf 'keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n' >"$PKI/front-proxy-client.ext"
        openssl req -new -key "$PKI/front-proxy-client.key" -subj "/CN=front-proxy-client" 2>>"$LOGDIR/pki.log" |
            openssl x509 -req -CA "$PKI/front-proxy-ca.crt" -CAkey "$PKI/front-proxy-ca.key" -set_serial "0x$(openssl rand -hex 16)" \
                -days 3650 -extfile "$PKI/front-proxy-client.ext" -out "$PKI/front-proxy-client.crt" 2>>"$LOGDIR/pki.log" ||
            die "openssl could not sign front-proxy-client: see $LOGDIR/pki.log"
        rm -f "$PKI/front-proxy-client.ext"
    fi
    local client="keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth" san n
    san="DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:127.0.0.1,IP:$SERVICE_APISERVER_IP"
    for n in $NODES; do san="$san,IP:$(node_ip "$n")"; done
    sign_cert apiserver "/CN=kube-apiserver" "keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=$san"
    sign_cert admin "/O=system:masters/CN=imagekit-admin" "$client"
    sign_cert apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" "$client"
    sign_cert controller-manager "/CN=system:kube-controller-manager" "$client"
    sign_cert scheduler "/CN=system:kube-scheduler" "$client"
    sign_cert kruise-manager "/O=system:masters/CN=kruise-manager" "$client"
    for n in $NODES; do sign_cert "kubelet-$n" "/O=system:nodes/CN=system:node:$n" "$client"; done
    if [ ! -s "$PKI/sa.key" ]; then
        openssl ecparam -name prime256v1 -genkey -noout -out "$PKI/sa.key" 2>>"$LOGDIR/pki.log"
        openssl ec -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>>"$LOGDIR/pki.log" ||
            die "openssl could not make the service account key: see $LOGDIR/pki.log"
    fi
    [ -s "$PKI/controller-manager.kubeconfig" ] || write_kubeconfig "$PKI/controller-manager.kubeconfig" system:kube-controller-manager controller-manager
    [ -s "$PKI/scheduler.kubeconfig" ] || write_kubeconfig "$PKI/scheduler.kubeconfig" system:kube-scheduler scheduler
    [ -s "$PKI/kruise-manager.kubeconfig" ] || write_kubeconfig "$PKI/kruise-manager.kubeconfig" kruise-manager kruise-manager
    for n in $NODES; do
        [ -s "$PKI/kubelet-$n.kubeconfig" ] || write_kubeconfig "$PKI/kubelet-$n.kubeconfig" "system:node:$n" "kubelet-$n"
    done
    # The admin kubeconfig is world-readable on purpose: a throwaway cluster on a test machine,
    # used by tests that may not run as root. Anyone on the machine is cluster-admin.
    if [ ! -s "$KUBECONFIG_PATH" ]; then
        write_kubeconfig "$KUBECONFIG_PATH" imagekit-admin admin
        chmod 644 "$KUBECONFIG_PATH"
    fi
}

# ---------------------------------------------------------------------------------------------
# Host network: one bridge per node (its address is the node's IP and its pods' gateway), a
# filter chain that lets pod traffic pass between the two bridges and nowhere else. Pods get a
# route to $CLUSTER_CIDR only (no default route), so nothing they send leaves the machine.
ensure_network() {
    local n br
    [ "$(cat /proc/sys/net/ipv4/ip_forward)" = 1 ] || echo 1 >/proc/sys/net/ipv4/ip_forward
    for n in $NODES; do
        br=$(node_bridge "$n")
        if ! ip link show "$br" >/dev/null 2>&1; then
            ip link add "$br" type bridge || die "ip link add $br type bridge failed"
        fi
        [[ $(ip addr show dev "$br") == *"inet $(node_ip "$n")/"* ]] ||
            ip addr add "$(node_ip "$n")/24" dev "$br" || die "ip addr add $(node_ip "$n")/24 dev $br failed"
        ip link set "$br" up
    done
    if ! iptables -w -n -L "$IPT_CHAIN" >/dev/null 2>&1; then
        iptables -w -N "$IPT_CHAIN" &&
            iptables -w -A "$IPT_CHAIN" -s "$CLUSTER_CIDR" -d "$CLUSTER_CIDR" -j ACCEPT &&
            iptables -w -A "$IPT_CHAIN" -s "$CLUSTER_CIDR" -j DROP &&
            iptables -w -A "$IPT_CHAIN" -d "$CLUSTER_CIDR" -j DROP || die "iptables: could not make chain $IPT_CHAIN"
    fi
    iptables -w -C FORWARD -j "$IPT_CHAIN" 2>/dev/null || iptables -w -I FORWARD 1 -j "$IPT_CHAIN" ||
        die "iptables: could not jump from FORWARD to $IPT_CHAIN"
}

# ---------------------------------------------------------------------------------------------
# Control plane.
ensure_etcd() {
    mkdir -p "$STATE/etcd" && chmod 700 "$STATE/etcd"
    ensure_daemon etcd "$BIN/etcd" "" "$BIN/etcd" --name imagekit --data-dir "$STATE/etcd" \
        --listen-client-urls "http://127.0.0.1:$ETCD_CLIENT_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_CLIENT_PORT" \
        --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
        --initial-cluster "imagekit=http://127.0.0.1:$ETCD_PEER_PORT" --log-level warn
    wait_for etcd "$LOGDIR/etcd.log" 30 curl -fsS "http://127.0.0.1:$ETCD_CLIENT_PORT/health"
}

apiserver_ready() {
    curl -fsS --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" "$APISERVER/readyz"
}

ensure_apiserver() {
    ensure_daemon kube-apiserver "$BIN/kube-apiserver" "on $APISERVER" "$BIN/kube-apiserver" \
        --etcd-servers "http://127.0.0.1:$ETCD_CLIENT_PORT" \
        --bind-address 127.0.0.1 --secure-port "$APISERVER_PORT" --advertise-address 127.0.0.1 \
        --endpoint-reconciler-type none \
        --tls-cert-file "$PKI/apiserver.crt" --tls-private-key-file "$PKI/apiserver.key" \
        --client-ca-file "$PKI/ca.crt" \
        --requestheader-client-ca-file "$PKI/front-proxy-ca.crt" --requestheader-allowed-names front-proxy-client \
        --requestheader-username-headers X-Remote-User --requestheader-group-headers X-Remote-Group \
        --requestheader-extra-headers-prefix X-Remote-Extra- \
        --proxy-client-cert-file "$PKI/front-proxy-client.crt" --proxy-client-key-file "$PKI/front-proxy-client.key" \
        --kubelet-preferred-address-types InternalIP \
        --kubelet-client-certificate "$PKI/apiserver-kubelet-client.crt" --kubelet-client-key "$PKI/apiserver-kubelet-client.key" \
        --service-account-issuer https://kubernetes.default.svc.cluster.local \
        --service-account-key-file "$PKI/sa.pub" --service-account-signing-key-file "$PKI/sa.key" \
        --service-cluster-ip-range "$SERVICE_CIDR" \
        --authorization-mode Node,RBAC --enable-admission-plugins NodeRestriction \
        --allow-privileged=true --profiling=false --v=1
    wait_for kube-apiserver "$LOGDIR/kube-apiserver.log" 90 apiserver_ready
}

ensure_controller_manager() {
    ensure_daemon kube-controller-manager "$BIN/kube-controller-manager" "" "$BIN/kube-controller-manager" \
        --kubeconfig "$PKI/controller-manager.kubeconfig" \
        --authentication-kubeconfig "$PKI/controller-manager.kubeconfig" \
        --authorization-kubeconfig "$PKI/controller-manager.kubeconfig" \
        --bind-address 127.0.0.1 --secure-port "$CM_PORT" --leader-elect=false \
        --cluster-name imagekit --cluster-cidr "$CLUSTER_CIDR" --allocate-node-cidrs=false \
        --service-cluster-ip-range "$SERVICE_CIDR" \
        --service-account-private-key-file "$PKI/sa.key" --root-ca-file "$PKI/ca.crt" \
        --cluster-signing-cert-file "$PKI/ca.crt" --cluster-signing-key-file "$PKI/ca.key" \
        --use-service-account-credentials=true --profiling=false --v=1
}

ensure_scheduler() {
    ensure_daemon kube-scheduler "$BIN/kube-scheduler" "" "$BIN/kube-scheduler" \
        --kubeconfig "$PKI/scheduler.kubeconfig" \
        --authentication-kubeconfig "$PKI/scheduler.kubeconfig" \
        --authorization-kubeconfig "$PKI/scheduler.kubeconfig" \
        --bind-address 127.0.0.1 --secure-port "$SCHED_PORT" --leader-elect=false --profiling=false --v=1
}

component_healthy() { # PORT
    curl -fsSk "https://127.0.0.1:$1/healthz"
}

# ---------------------------------------------------------------------------------------------
# Nodes: containerd + kubelet each.
write_containerd_config() { # NODE
    local n=$1 d r
    d=$(node_dir "$n") r=$(node_run "$n")
    mkdir -p "$d/containerd" "$d/cni/net.d" "$d/cni/ipam" "$r" "$STATE/registry-hosts/$REGISTRY"
    write_if_changed "$STATE/registry-hosts/$REGISTRY/hosts.toml" <<EOF || true
# The local registry speaks plain HTTP (scripts/bootstrap.sh runs it on $REGISTRY).
server = "http://$REGISTRY"

[host."http://$REGISTRY"]
  capabilities = ["pull", "resolve"]
EOF
    CONFIG_CHANGED=""
    write_if_changed "$d/containerd.toml" <<EOF && CONFIG_CHANGED=1
# containerd for node $n (written by scripts/cluster.sh; Debian's containerd $(containerd --version 2>/dev/null | awk '{print $3}'))
version = 2
root = "$d/containerd"
state = "$r/containerd"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = "$r/containerd.sock"

[ttrpc]
  address = "$r/containerd.sock.ttrpc"

[debug]
  address = ""

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "$d/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  # This machine lacks CAP_SYS_RESOURCE: runc must not lower oom_score_adj.
  restrict_oom_score_adj = true
  # Pod network namespaces under this node's state dir, not /run/netns: down unmounts them there.
  netns_mounts_under_state_dir = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  disable_apparmor = true

  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"

    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"

      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "$r/runc"

  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$d/cni/net.d"
    max_conf_num = 1

  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "$STATE/registry-hosts"
EOF
    printf 'runtime-endpoint: unix://%s\nimage-endpoint: unix://%s\n' "$r/containerd.sock" "$r/containerd.sock" |
        write_if_changed "$d/crictl.yaml" || true
    write_if_changed "$d/cni/net.d/10-imagekit.conflist" <<EOF || true
{
  "cniVersion": "1.0.0",
  "name": "$n",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$(node_bridge "$n")",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": "$(node_subnet "$n")", "gateway": "$(node_ip "$n")"}]],
        "routes": [{"dst": "$CLUSTER_CIDR"}],
        "dataDir": "$d/cni/ipam"
      }
    }
  ]
}
EOF
}

ensure_pause_image() { # build the sandbox image once per pause.c; sets PAUSE_IMAGE and PAUSE_TAR
    local sum dir
    sum=$(cat "$IMAGES_SRC/pause.c" "$IMAGES_SRC/oci-image.sh" | sha256sum | cut -c1-12)
    PAUSE_IMAGE=$PAUSE_NAME:$sum
    dir=$STATE/images
    PAUSE_TAR=$dir/pause-$sum.tar
    [ -s "$PAUSE_TAR" ] && return 0
    say "building the pod sandbox image $PAUSE_IMAGE (gcc -static, FROM scratch)"
    mkdir -p "$dir/pause-build"
    gcc -static -Os -s -o "$dir/pause-build/pause" "$IMAGES_SRC/pause.c" >>"$LOGDIR/images.log" 2>&1 ||
        die "gcc -static pause.c failed (is libc6-dev installed?): see $LOGDIR/images.log"
    "$IMAGES_SRC/oci-image.sh" "$dir/pause-build/pause" "$PAUSE_IMAGE" "$PAUSE_TAR.tmp" >>"$LOGDIR/images.log" 2>&1 ||
        die "packing the pause image failed: see $LOGDIR/images.log"
    mv "$PAUSE_TAR.tmp" "$PAUSE_TAR"
    rm -rf "$dir/pause-build"
}

ctr_node() { local n=$1; shift; ctr --address "$(node_sock "$n")" --namespace k8s.io "$@"; }
crictl_node() { local n=$1; shift; "$BIN/crictl" --config "$(node_dir "$n")/crictl.yaml" --timeout 10s "$@"; }

ensure_containerd() { # NODE
    local n=$1
    write_containerd_config "$n"
    if [ -n "$CONFIG_CHANGED" ] && running "containerd-$n"; then
        say "containerd config of $n changed: restarting it (its containers keep running)"
        stop_daemon "containerd-$n"
    fi
    ensure_daemon "containerd-$n" "$(node_dir "$n")/containerd.toml" "for node $n" \
        containerd --config "$(node_dir "$n")/containerd.toml"
    wait_for "containerd-$n" "$LOGDIR/containerd-$n.log" 30 ctr --address "$(node_sock "$n")" version
    if ! grep -qx "$PAUSE_IMAGE" <<<"$(ctr_node "$n" images ls -q)"; then
        say "importing $PAUSE_IMAGE into $n's containerd"
        ctr_node "$n" images import "$PAUSE_TAR" >>"$LOGDIR/containerd-$n.log" 2>&1 ||
            die "ctr images import of the pause image into $n failed: see $LOGDIR/containerd-$n.log"
    fi
}

# cgroup v1, cgroupfs driver: each kubelet has a cgroup root of its own, so neither removes the
# other's pod cgroups as orphans.
CGROUP_CONTROLLERS="cpu cpuacct cpuset memory devices freezer blkio pids systemd hugetlb net_cls net_prio perf_event rdma misc unified"
ensure_cgroup_root() { # NODE
    local c
    for c in $CGROUP_CONTROLLERS; do
        [ -d "/sys/fs/cgroup/$c" ] || continue
        mkdir -p "/sys/fs/cgroup/$c/$1"
    done
    # cpuset children start empty: copy the parent's cpus and mems.
    if [ -d /sys/fs/cgroup/cpuset/"$1" ]; then
        [ -n "$(cat /sys/fs/cgroup/cpuset/"$1"/cpuset.cpus)" ] || cat /sys/fs/cgroup/cpuset/cpuset.cpus >/sys/fs/cgroup/cpuset/"$1"/cpuset.cpus
        [ -n "$(cat /sys/fs/cgroup/cpuset/"$1"/cpuset.mems)" ] || cat /sys/fs/cgroup/cpuset/cpuset.mems >/sys/fs/cgroup/cpuset/"$1"/cpuset.mems
    fi
}

write_kubelet_config() { # NODE
    local n=$1 d
    d=$(node_dir "$n")
    mkdir -p "$d/kubelet" "$d/pod-logs"
    CONFIG_CHANGED=""
    write_if_changed "$d/kubelet.yaml" <<EOF && CONFIG_CHANGED=1
# kubelet of node $n (written by scripts/cluster.sh)
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $(node_ip "$n")
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $(node_healthz_port "$n")
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: true
  x509:
    clientCAFile: $PKI/ca.crt
authorization:
  mode: Webhook
containerRuntimeEndpoint: unix://$(node_sock "$n")
cgroupDriver: cgroupfs
cgroupRoot: /$n
cgroupsPerQOS: true
failSwapOn: false
makeIPTablesUtilChains: false
podLogsDir: $d/pod-logs
clusterDomain: cluster.local
serializeImagePulls: false
maxPods: 110
evictionHard:
  memory.available: 100Mi
  nodefs.available: 1%
  nodefs.inodesFree: 1%
  imagefs.available: 1%
imageGCHighThresholdPercent: 95
imageGCLowThresholdPercent: 90
EOF
    return 0
}

# The kubelet sets these host sysctls when it starts (it does not restore them): their values
# from before the first kubelet are kept, and down puts them back.
KUBELET_SYSCTLS="vm/overcommit_memory vm/panic_on_oom kernel/panic kernel/panic_on_oops kernel/keys/root_maxkeys kernel/keys/root_maxbytes"
save_sysctls() {
    local f=$STATE/sysctls-before-kubelet k n
    [ -s "$f" ] && return 0
    for n in $NODES; do running "kubelet-$n" && return 0; done
    for k in $KUBELET_SYSCTLS; do echo "$k $(cat "/proc/sys/$k")"; done >"$f"
}
restore_sysctls() {
    local f=$STATE/sysctls-before-kubelet k v
    [ -s "$f" ] || return 0
    while read -r k v; do echo "$v" >"/proc/sys/$k" 2>/dev/null || say "could not restore sysctl $k=$v"; done <"$f"
    rm -f "$f"
}

kubelet_healthy() { curl -fsS "http://127.0.0.1:$(node_healthz_port "$1")/healthz"; }

ensure_node() { # NODE
    local n=$1
    ensure_containerd "$n"
    ensure_cgroup_root "$n"
    write_kubelet_config "$n"
    save_sysctls
    if [ -n "$CONFIG_CHANGED" ] && running "kubelet-$n"; then
        say "kubelet config of $n changed: restarting it"
        stop_daemon "kubelet-$n"
    fi
    ensure_daemon "kubelet-$n" "$(node_dir "$n")/kubelet.yaml" "(node IP $(node_ip "$n"), pods $(node_subnet "$n"))" \
        "$BIN/kubelet" --config "$(node_dir "$n")/kubelet.yaml" --kubeconfig "$PKI/kubelet-$n.kubeconfig" \
        --root-dir "$(node_dir "$n")/kubelet" --cert-dir "$(node_dir "$n")/kubelet/pki" \
        --hostname-override "$n" --node-ip "$(node_ip "$n")" \
        --node-labels "imagekit.dev/cluster-node=${n##*-}" --v=1
}

# ---------------------------------------------------------------------------------------------
# Storage: local PVs per node (node-local SSD) and shared hostPath PVs (the PV tier).
storage_yaml() {
    local n i dir
    cat <<EOF
# Node-local SSD: directories on one node, usable only by pods on that node.
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: imagekit-local-ssd
  labels: {imagekit.dev/cluster-storage: "true"}
provisioner: kubernetes.io/no-provisioner
volumeBindingMode: WaitForFirstConsumer
reclaimPolicy: Retain
---
# The PV tier: storage every node reaches and that outlives any node.
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: imagekit-shared
  labels: {imagekit.dev/cluster-storage: "true"}
provisioner: kubernetes.io/no-provisioner
volumeBindingMode: WaitForFirstConsumer
reclaimPolicy: Retain
EOF
    for n in $NODES; do
        for ((i = 0; i < LOCAL_PVS_PER_NODE; i++)); do
            dir=$STATE/storage/local-ssd/$n/pv-$i
            cat <<EOF
---
apiVersion: v1
kind: PersistentVolume
metadata:
  name: local-ssd-$n-$i
  labels: {imagekit.dev/cluster-storage: "true", imagekit.dev/storage-node: "$n"}
spec:
  capacity: {storage: $LOCAL_PV_SIZE}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: imagekit-local-ssd
  volumeMode: Filesystem
  local: {path: "$dir"}
  nodeAffinity:
    required:
      nodeSelectorTerms:
      - matchExpressions:
        - {key: kubernetes.io/hostname, operator: In, values: ["$n"]}
EOF
        done
    done
    for ((i = 0; i < SHARED_PVS; i++)); do
        dir=$STATE/storage/shared/pv-$i
        cat <<EOF
---
apiVersion: v1
kind: PersistentVolume
metadata:
  name: shared-$i
  labels: {imagekit.dev/cluster-storage: "true"}
spec:
  capacity: {storage: $SHARED_PV_SIZE}
  accessModes: [ReadWriteOnce, ReadWriteMany]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: imagekit-shared
  volumeMode: Filesystem
  hostPath: {path: "$dir", type: Directory}
EOF
    done
}

ensure_storage() {
    local n i sum pv dir
    for n in $NODES; do
        for ((i = 0; i < LOCAL_PVS_PER_NODE; i++)); do mkdir -p "$STATE/storage/local-ssd/$n/pv-$i"; done
    done
    # hostPath volumes get no fsGroup from the kubelet (local ones do): the shared tier's directories are
    # open to every pod user, as an NFS export for many users is.
    for ((i = 0; i < SHARED_PVS; i++)); do mkdir -p "$STATE/storage/shared/pv-$i" && chmod 0777 "$STATE/storage/shared/pv-$i"; done
    sum=$(storage_yaml | sha256sum | cut -c1-16)
    if [ "$(cat "$STATE/storage/applied" 2>/dev/null)" != "$sum" ] || ! kc get storageclass imagekit-local-ssd imagekit-shared >/dev/null 2>&1; then
        say "creating StorageClasses imagekit-local-ssd and imagekit-shared and their PersistentVolumes"
        storage_yaml | kc apply -f - >>"$LOGDIR/kubectl.log" 2>&1 || die "kubectl apply of the storage objects failed: see $LOGDIR/kubectl.log"
        echo "$sum" >"$STATE/storage/applied"
    fi
    ensure_daemon pv-recycler "$ROOT/scripts/cluster.sh recycle-volumes" "(empties Released volumes and offers them again)" \
        bash "$ROOT/scripts/cluster.sh" recycle-volumes
}

# The volumes have no provisioner to delete them: a Released one (its claim deleted) is emptied
# and made Available again, as a provisioner would. Runs every few seconds as pv-recycler.
recycle_released_volumes() {
    local pv dir
    kc get pv -l imagekit.dev/cluster-storage=true \
        -o jsonpath='{range .items[?(@.status.phase=="Released")]}{.metadata.name} {.spec.local.path}{.spec.hostPath.path}{"\n"}{end}' 2>/dev/null |
        while read -r pv dir; do
            [ -n "$pv" ] && [ -n "$dir" ] || continue
            case $dir in "$STATE"/storage/*) ;; *) continue ;; esac
            say "recycling released volume $pv ($dir)"
            find "$dir" -mindepth 1 -delete 2>/dev/null || true
            kc patch pv "$pv" --type json -p '[{"op":"remove","path":"/spec/claimRef"}]' || true
        done
}

cmd_recycle_volumes() {
    set +e
    while :; do
        recycle_released_volumes
        sleep 5
    done
}

# ---------------------------------------------------------------------------------------------
# OpenKruise: CRDs and webhook configurations first, then kruise-manager outside the cluster.
ensure_kruise() {
    local sum
    sum=$(cat "$KRUISE_CONFIG/crds.yaml" "$KRUISE_CONFIG/webhooks.yaml" | sha256sum | cut -c1-16)
    if [ "$(cat "$STATE/kruise/applied" 2>/dev/null)" != "$sum" ] || ! kc get crd statefulsets.apps.kruise.io >/dev/null 2>&1; then
        say "installing OpenKruise CRDs and webhook configurations"
        mkdir -p "$STATE/kruise"
        kc create namespace kruise-system >>"$LOGDIR/kubectl.log" 2>&1 || kc get namespace kruise-system >/dev/null 2>&1 ||
            die "could not create namespace kruise-system: see $LOGDIR/kubectl.log"
        kc apply --server-side --force-conflicts -f "$KRUISE_CONFIG/crds.yaml" >>"$LOGDIR/kubectl.log" 2>&1 ||
            die "kubectl apply of kruise's CRDs failed: see $LOGDIR/kubectl.log"
        # kruise-manager fills these in (its CA, URLs to 127.0.0.1) and keeps the originals in
        # an annotation: they are replaced only when kruise's own config changed.
        kc replace --force -f "$KRUISE_CONFIG/webhooks.yaml" >>"$LOGDIR/kubectl.log" 2>&1 ||
            kc create -f "$KRUISE_CONFIG/webhooks.yaml" >>"$LOGDIR/kubectl.log" 2>&1 ||
            die "creating kruise's webhook configurations failed: see $LOGDIR/kubectl.log"
        kc wait --for condition=established --timeout 60s -f "$KRUISE_CONFIG/crds.yaml" >>"$LOGDIR/kubectl.log" 2>&1 ||
            die "kruise's CRDs not established: see $LOGDIR/kubectl.log"
        echo "$sum" >"$STATE/kruise/applied"
    fi
    mkdir -p "$STATE/kruise/certs"
    ensure_daemon kruise-manager "$BIN/kruise-manager" "(webhook https://127.0.0.1:$KRUISE_WEBHOOK_PORT)" env \
        KUBECONFIG="$PKI/kruise-manager.kubeconfig" POD_NAMESPACE=kruise-system \
        WEBHOOK_HOST=127.0.0.1 WEBHOOK_PORT="$KRUISE_WEBHOOK_PORT" WEBHOOK_CERT_DIR="$STATE/kruise/certs" \
        "$BIN/kruise-manager" --enable-leader-election=false --enable-pprof=false \
        --metrics-addr "$KRUISE_METRICS_ADDR" --health-probe-addr "$KRUISE_HEALTH_ADDR" \
        --feature-gates KruiseDaemon=false --logtostderr=true --v=2
    wait_for kruise-manager "$LOGDIR/kruise-manager.log" 120 curl -fsS "http://$KRUISE_HEALTH_ADDR/readyz"
}

# ---------------------------------------------------------------------------------------------
nodes_ready() {
    local n
    for n in $NODES; do
        [ "$(kc get node "$n" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" = True ] || return 1
    done
}

label_pod_cidrs() { # the node's podCIDR field, for the record (the CNI config decides the addresses)
    local n
    for n in $NODES; do
        [ -n "$(kc get node "$n" -o jsonpath='{.spec.podCIDR}' 2>/dev/null)" ] && continue
        kc patch node "$n" -p "{\"spec\":{\"podCIDR\":\"$(node_subnet "$n")\",\"podCIDRs\":[\"$(node_subnet "$n")\"]}}" \
            >>"$LOGDIR/kubectl.log" 2>&1 || true
    done
}

cmd_up() {
    need_root up
    local start n
    start=$(date +%s)
    STARTED=0
    mkdir -p "$STATE" "$RUNDIR" "$LOGDIR"
    exec 9>"$RUNDIR/lock"
    flock -w 300 9 || die "another scripts/cluster.sh holds $RUNDIR/lock"
    ensure_apt_packages
    cmd_build
    ensure_pki
    ensure_pause_image
    ensure_network
    ensure_etcd
    ensure_apiserver
    ensure_controller_manager
    ensure_scheduler
    for n in $NODES; do ensure_node "$n"; done
    wait_for kube-controller-manager "$LOGDIR/kube-controller-manager.log" 60 component_healthy "$CM_PORT"
    wait_for kube-scheduler "$LOGDIR/kube-scheduler.log" 60 component_healthy "$SCHED_PORT"
    for n in $NODES; do wait_for "kubelet-$n" "$LOGDIR/kubelet-$n.log" 60 kubelet_healthy "$n"; done
    ensure_storage
    ensure_kruise
    wait_for "nodes Ready" "$LOGDIR/kubelet-imagekit-node-a.log and $LOGDIR/kubelet-imagekit-node-b.log" 120 nodes_ready
    label_pod_cidrs
    # kubectl for everyone (the cache is in root's home): scripts/cluster.sh kubectl falls back to it.
    mkdir -p "$STATE/bin"
    cmp -s "$BIN/kubectl" "$STATE/bin/kubectl" || { cp "$BIN/kubectl" "$STATE/bin/kubectl.tmp" && mv "$STATE/bin/kubectl.tmp" "$STATE/bin/kubectl"; }
    if [ "$STARTED" -eq 0 ]; then
        say "cluster already up: nothing started ($(($(date +%s) - start))s)"
    else
        say "cluster up: $STARTED processes started in $(($(date +%s) - start))s; nodes $(echo $NODES) Ready"
    fi
    echo "$KUBECONFIG_PATH"
}

# ---------------------------------------------------------------------------------------------
# Stopping.
node_shims() { # NODE: pids of the containerd shims of that node's containerd
    local sock pid
    sock=$(node_sock "$1")
    for pid in $(pgrep -x containerd-shim 2>/dev/null; pgrep -f '^/usr/bin/containerd-shim-runc-v2 ' 2>/dev/null); do
        [[ $(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) == *"-address $sock "* ]] && echo "$pid"
    done | sort -u
}

descendants() { # PID: its child processes, recursively
    local c
    for c in $(pgrep -P "$1" 2>/dev/null); do
        echo "$c"
        descendants "$c"
    done
}

stop_node_processes() { # NODE: kubelet, every pod, containerd, the shims left
    local n=$1 pid p
    stop_daemon "kubelet-$n"
    if running "containerd-$n"; then
        # Through CRI: each sandbox's network is torn down by its CNI plugin (veth, IP lease).
        crictl_node "$n" rmp --all --force >>"$LOGDIR/containerd-$n.log" 2>&1 || true
    fi
    stop_daemon "containerd-$n"
    for pid in $(node_shims "$n"); do
        for p in $(descendants "$pid"); do kill -KILL "$p" 2>/dev/null || true; done
        kill -KILL "$pid" 2>/dev/null || true
    done
}

unmount_under() { # DIR...: every mount point at or below them, deepest first
    local d mp
    for d in "$@"; do
        awk '{print $5}' /proc/self/mountinfo | sed 's/\\040/ /g' | while read -r mp; do
            case $mp in "$d" | "$d"/*) echo "$mp" ;; esac
        done
    done | sort -ru | while read -r mp; do
        umount "$mp" 2>/dev/null || umount -l "$mp" 2>/dev/null || say "could not unmount $mp"
    done
}

remove_cgroup_root() { # NODE
    local c
    for c in $CGROUP_CONTROLLERS; do
        [ -d "/sys/fs/cgroup/$c/$1" ] || continue
        find "/sys/fs/cgroup/$c/$1" -depth -type d -exec rmdir {} \; 2>/dev/null || true
    done
}

remove_container_log_links() { # kubelet's links in /var/log/containers into this cluster's dirs
    local l
    for l in /var/log/containers/*.log; do
        [ -L "$l" ] || continue
        case $(readlink "$l") in "$STATE"/*) rm -f "$l" ;; esac
    done
}

node_host_cleanup() { # NODE: after its processes are gone
    local n=$1
    unmount_under "$(node_dir "$n")" "$(node_run "$n")"
    remove_cgroup_root "$n"
    remove_container_log_links
    rm -rf "$(node_run "$n")" "$(node_dir "$n")/cni/ipam"
    rm -rf /var/lib/cni/results/"$n"-* 2>/dev/null || true
    ip link del "$(node_bridge "$n")" 2>/dev/null || true
}

cmd_stop_node() {
    need_root stop-node
    [ $# -eq 1 ] || usage
    local n=$1
    node_index "$n" >/dev/null || { printf 'cluster: unknown node %s (nodes: %s)\n' "$n" "$NODES" >&2; exit 2; }
    mkdir -p "$RUNDIR" "$LOGDIR"
    exec 9>"$RUNDIR/lock"
    flock -w 300 9 || die "another scripts/cluster.sh holds $RUNDIR/lock"
    stop_node_processes "$n"
    node_host_cleanup "$n"
    if [ -x "$BIN/kubectl" ] && apiserver_ready >/dev/null 2>&1; then
        say "deleting Node $n"
        kc delete node "$n" --ignore-not-found --wait=false >>"$LOGDIR/kubectl.log" 2>&1 ||
            die "kubectl delete node $n failed: see $LOGDIR/kubectl.log"
    fi
    say "node $n stopped; 'scripts/cluster.sh up' brings it back"
}

cmd_down() {
    need_root down
    local purge="" n
    case ${1:-} in "") ;; --purge) purge=1 ;; *) usage ;; esac
    mkdir -p "$RUNDIR" "$LOGDIR"
    exec 9>"$RUNDIR/lock"
    flock -w 300 9 || die "another scripts/cluster.sh holds $RUNDIR/lock"
    stop_daemon pv-recycler
    stop_daemon kruise-manager
    stop_daemon kube-scheduler
    stop_daemon kube-controller-manager
    for n in $NODES; do stop_node_processes "$n"; done
    stop_daemon kube-apiserver 20
    stop_daemon etcd 20
    for n in $NODES; do node_host_cleanup "$n"; done
    restore_sysctls
    unmount_under "$STATE" "$RUNDIR"
    rmdir /var/lib/cni/results /var/lib/cni 2>/dev/null || true # libcni's cache, when left empty
    if iptables -w -n -L "$IPT_CHAIN" >/dev/null 2>&1; then
        while iptables -w -D FORWARD -j "$IPT_CHAIN" 2>/dev/null; do :; done
        iptables -w -F "$IPT_CHAIN" && iptables -w -X "$IPT_CHAIN" || say "could not remove iptables chain $IPT_CHAIN"
    fi
    if [ -n "$purge" ]; then
        say "deleting $STATE, $RUNDIR and $LOGDIR (binaries stay in $CACHE_ROOT)"
        rm -rf "$STATE" "$RUNDIR" "$LOGDIR"
    else
        rm -rf "$RUNDIR/pids"
    fi
    say "cluster down"
}

# ---------------------------------------------------------------------------------------------
cmd_status() {
    local bad=0 c n
    component_line() { # NAME CHECK...
        local name=$1
        shift
        if running "$name" && "$@" >/dev/null 2>&1; then
            printf '%-28s running (pid %s)\n' "$name" "$(head -n1 "$(pidfile "$name")")"
        elif running "$name"; then
            printf '%-28s started, not answering (log: %s)\n' "$name" "$LOGDIR/$name.log"
            bad=1
        else
            printf '%-28s not running\n' "$name"
            bad=1
        fi
    }
    component_line etcd curl -fsS "http://127.0.0.1:$ETCD_CLIENT_PORT/health"
    component_line kube-apiserver apiserver_ready
    component_line kube-controller-manager component_healthy "$CM_PORT"
    component_line kube-scheduler component_healthy "$SCHED_PORT"
    for n in $NODES; do
        component_line "containerd-$n" ctr --address "$(node_sock "$n")" version
        component_line "kubelet-$n" kubelet_healthy "$n"
    done
    component_line kruise-manager curl -fsS "http://$KRUISE_HEALTH_ADDR/readyz"
    component_line pv-recycler true
    if [ -x "$BIN/kubectl" ] && apiserver_ready >/dev/null 2>&1; then
        kc get nodes -o wide || bad=1
        nodes_ready || bad=1
    fi
    [ -s "$KUBECONFIG_PATH" ] && echo "kubeconfig: $KUBECONFIG_PATH"
    return $bad
}

cmd_kubectl() {
    local kubectl=$BIN/kubectl
    [ -x "$kubectl" ] || kubectl=$STATE/bin/kubectl # the copy up leaves, for users other than root
    [ -x "$kubectl" ] || die "kubectl not built for this checkout's pins: run scripts/cluster.sh build (or up)"
    [ -r "$KUBECONFIG_PATH" ] || die "no kubeconfig at $KUBECONFIG_PATH: run scripts/cluster.sh up"
    exec "$kubectl" --kubeconfig "$KUBECONFIG_PATH" "$@"
}

cmd_crictl() {
    [ $# -ge 1 ] || usage
    local n=$1
    shift
    node_index "$n" >/dev/null || { printf 'cluster: unknown node %s (nodes: %s)\n' "$n" "$NODES" >&2; exit 2; }
    [ -x "$BIN/crictl" ] || die "crictl not built for this checkout's pins: run scripts/cluster.sh build (or up)"
    exec "$BIN/crictl" --config "$(node_dir "$n")/crictl.yaml" "$@"
}

main() {
    [ $# -ge 1 ] || usage
    local verb=$1
    shift
    case $verb in
        build) [ $# -eq 0 ] || usage; cmd_build ;;
        crd) [ $# -eq 0 ] || usage; cmd_crd ;;
        up) [ $# -eq 0 ] || usage; cmd_up ;;
        down) [ $# -le 1 ] || usage; cmd_down "$@" ;;
        status) [ $# -eq 0 ] || usage; cmd_status ;;
        kubectl) cmd_kubectl "$@" ;;
        crictl) cmd_crictl "$@" ;;
        recycle-volumes) cmd_recycle_volumes ;; # internal: the pv-recycler process
        stop-node) cmd_stop_node "$@" ;;
        -h | --help | help) usage ;;
        *) usage ;;
    esac
}

main "$@"
