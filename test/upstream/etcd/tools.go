//go:build tools

// The programs build.sh builds, named here so that `go mod tidy` keeps what they need.
package tools

import (
	_ "go.etcd.io/etcd/etcdctl/v3"
	_ "go.etcd.io/etcd/server/v3"
)
