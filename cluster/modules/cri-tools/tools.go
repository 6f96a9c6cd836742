//go:build tools

// The program this module builds: crictl, to look at and clean up what each node's containerd
// runs (scripts/cluster.sh down removes every pod sandbox through it before stopping containerd).
package tools

import (
	_ "sigs.k8s.io/cri-tools/cmd/crictl"
)
