// CoreDNS for the coredns image of the tests (test/upstream/build-images.sh): upstream's coremain with only
// the plugins kubebake's Corefile uses (units/files/usr/lib/kubebake/addons/coredns.yaml.ejs) plus log, the
// way CoreDNS documents builds with a chosen set of plugins. The full program imports every plugin, cloud
// ones included (AWS, Azure, Google Cloud, etcd, dnstap, geoip…): several times the code and the modules.
package main

import (
	"slices"

	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/forward"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/loadbalance"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/loop"
	_ "github.com/coredns/coredns/plugin/metrics"
	_ "github.com/coredns/coredns/plugin/ready"
	_ "github.com/coredns/coredns/plugin/reload"
)

// The Corefile directives of the plugins above (metrics registers as prometheus).
var plugins = []string{"cache", "errors", "forward", "health", "kubernetes", "loadbalance", "log", "loop",
	"prometheus", "ready", "reload"}

func init() {
	// Upstream's order (core/dnsserver/zdirectives.go, generated from plugin.cfg) decides which plugin sees
	// a query first; keep it, filtered to the plugins built in.
	dnsserver.Directives = slices.DeleteFunc(slices.Clone(dnsserver.Directives),
		func(d string) bool { return !slices.Contains(plugins, d) })
}

func main() {
	coremain.Run()
}
