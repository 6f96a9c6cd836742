//go:build tools

// The program this module builds: kruise-manager (the root package of github.com/openkruise/kruise).
package tools

import (
	_ "github.com/openkruise/kruise"
)
