//go:build tools

// The program build-etcdutl.sh builds, named here so that `go mod tidy` keeps what it needs.
package tools

import _ "go.etcd.io/etcd/etcdutl/v3"
