//go:build tools

// The program build-images.sh builds, named here so that `go mod tidy` keeps what it needs.
package tools

import (
	_ "github.com/flannel-io/flannel"
)
