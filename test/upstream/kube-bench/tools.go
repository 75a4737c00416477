//go:build tools

// The program build-kube-bench.sh builds, named here so that `go mod tidy` keeps what it needs.
package tools

import _ "github.com/aquasecurity/kube-bench"
