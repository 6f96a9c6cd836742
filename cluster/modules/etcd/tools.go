//go:build tools

// The programs this module builds (scripts/cluster.sh runs `go build` on each).
package tools

import (
	_ "go.etcd.io/etcd/etcdctl/v3"
	_ "go.etcd.io/etcd/server/v3"
)
