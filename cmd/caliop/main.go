// Command caliop runs the Caliop relay. It only wires: flags, configuration,
// components, signals.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/caliop/relay/config"
	"github.com/caliop/relay/internal/gctune"
	"github.com/caliop/relay/server"
)

// version is stamped at build time: -ldflags "-X main.version=1.2.3".
var version = "dev"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// serve runs the relay until SIGTERM or SIGINT; SIGHUP reloads the
// configuration through load (the file given at start).
func serve(cfg *config.Config, load func() (*config.Config, error)) error {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer signal.Stop(sig)
	log, level, err := server.NewLogger(cfg.Log)
	if err != nil {
		return server.StartError{Err: err}
	}
	defer log.Sync()
	if os.Getenv("GOGC") == "" {
		// The heap churns with every message: GOGC follows the live heap,
		// 300 while it is small, down to 100 as the heap nears 144 MiB (README,
		// Benchmark). GOGC set by the operator wins.
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go gctune.Run(ctx, 5*time.Second)
	}
	server.Version = version
	return server.Run(cfg, load, log, level, sig)
}
