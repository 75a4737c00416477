// probe: the one program of the boot test's pods, whose images hold no shell (test/upstream/build-images.sh).
//
//	probe serve [ADDR]                                   HTTP on ADDR (:8080): GET / answers the hostname, GET /healthz ok
//	probe get URL [--insecure] [--bearer-file F] [--ca F] prints the status line and the body; exit 0 only on 2xx
//	probe resolve NAME                                    prints NAME's addresses, one a line; exit 1 if none
//	probe sleep [DURATION]                                waits (for ever by default) until SIGTERM or SIGINT
//
// It runs as PID 1 in its container, where a signal without a handler is ignored: serve and sleep exit 0 on
// SIGTERM and SIGINT so that a pod stops at once. Usage errors exit 2.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

const usage = `usage: probe serve [ADDR]
       probe get URL [--insecure] [--bearer-file FILE] [--ca FILE]
       probe resolve NAME
       probe sleep [DURATION]`

func main() {
	if len(os.Args) < 2 {
		fail(2, usage)
	}
	args := os.Args[2:]
	switch os.Args[1] {
	case "serve":
		addr := ":8080"
		if len(args) > 1 {
			fail(2, usage)
		} else if len(args) == 1 {
			addr = args[0]
		}
		serve(addr)
	case "get":
		os.Exit(get(args))
	case "resolve":
		if len(args) != 1 {
			fail(2, usage)
		}
		resolve(args[0])
	case "sleep":
		sleep(args)
	case "-h", "--help", "help":
		fmt.Println(usage)
	default:
		fail(2, usage)
	}
}

func fail(code int, format string, a ...any) {
	fmt.Fprintf(os.Stderr, format+"\n", a...)
	os.Exit(code)
}

// stopped is closed on the first SIGTERM or SIGINT.
func stopped() <-chan os.Signal {
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGTERM, syscall.SIGINT)
	return c
}

func serve(addr string) {
	hostname, err := os.Hostname()
	if err != nil {
		fail(1, "probe: %v", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, hostname) })
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	listener, err := net.Listen("tcp", addr)
	if err != nil {
		fail(1, "probe: %v", err)
	}
	server := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(os.Stderr, "probe: serving on %s as %s\n", listener.Addr(), hostname)
	done := make(chan error, 1)
	go func() { done <- server.Serve(listener) }()
	select {
	case err := <-done:
		fail(1, "probe: %v", err)
	case <-stopped():
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = server.Shutdown(ctx)
	}
}

func get(args []string) int {
	var url, bearerFile, caFile string
	insecure := false
	for i := 0; i < len(args); i++ {
		switch arg := args[i]; {
		case arg == "--insecure":
			insecure = true
		case (arg == "--bearer-file" || arg == "--ca") && i+1 < len(args):
			i++
			if arg == "--ca" {
				caFile = args[i]
			} else {
				bearerFile = args[i]
			}
		case url == "" && !strings.HasPrefix(arg, "-"):
			url = arg
		default:
			fail(2, usage)
		}
	}
	if url == "" {
		fail(2, usage)
	}
	config := &tls.Config{InsecureSkipVerify: insecure}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			fail(1, "probe: %v", err)
		}
		config.RootCAs = x509.NewCertPool()
		if !config.RootCAs.AppendCertsFromPEM(pem) {
			fail(1, "probe: no PEM certificate in %s", caFile)
		}
	}
	request, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		fail(2, "probe: %v", err)
	}
	if bearerFile != "" {
		token, err := os.ReadFile(bearerFile)
		if err != nil {
			fail(1, "probe: %v", err)
		}
		request.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: config}}
	response, err := client.Do(request)
	if err != nil {
		fmt.Fprintf(os.Stderr, "probe: %v\n", err)
		return 1
	}
	defer response.Body.Close()
	fmt.Printf("%s %s\n", response.Proto, response.Status)
	if _, err := io.Copy(os.Stdout, response.Body); err != nil {
		fmt.Fprintf(os.Stderr, "probe: %v\n", err)
		return 1
	}
	if response.StatusCode < 200 || response.StatusCode > 299 {
		return 1
	}
	return 0
}

func resolve(name string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	addresses, err := net.DefaultResolver.LookupHost(ctx, name)
	if err != nil {
		fail(1, "probe: %v", err)
	}
	if len(addresses) == 0 {
		fail(1, "probe: %s has no address", name)
	}
	for _, address := range addresses {
		fmt.Println(address)
	}
}

func sleep(args []string) {
	var timeout <-chan time.Time
	if len(args) > 1 {
		fail(2, usage)
	} else if len(args) == 1 {
		d, err := time.ParseDuration(args[0])
		if err != nil {
			fail(2, "probe: %v", err)
		}
		timeout = time.After(d)
	}
	select {
	case <-timeout:
	case <-stopped():
	}
}
