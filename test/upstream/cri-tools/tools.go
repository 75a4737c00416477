//go:build tools

// The program build.sh builds, named here so that `go mod tidy` keeps what it needs.
package tools

import _ "sigs.k8s.io/cri-tools/cmd/crictl"
