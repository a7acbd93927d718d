// Package server builds Caliop's components from a configuration and runs
// them: the listeners, the reload supervisor (SIGHUP builds a new
// generation, binds what changed and lets the old one drain), readiness,
// and the background work. It also answers the operator's commands that
// need those components built as serve builds them (check, mta-sts, wkd,
// records, tlsrpt). Command caliop only parses flags and hands signals
// over.
package server

import (
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.uber.org/zap"

	"github.com/caliop/relay/config"
	"github.com/caliop/relay/metrics"
	"github.com/caliop/relay/store"
)

// behindInterval is how long the relay's store writes wait, to go to the
// file together (store.Behind).
const behindInterval = time.Second

// Version is the running build's version, in logs and metrics; command
// caliop sets it from its build stamp.
var Version = "dev"

// Run makes what lives as long as the process (store, metrics registry),
// builds the first generation from cfg and runs it, taking signals from
// sig: SIGHUP reloads through load, SIGTERM and SIGINT drain and return.
// A failure before the relay started is a StartError.
func Run(cfg *config.Config, load func() (*config.Config, error), log *zap.Logger, level zap.AtomicLevel, sig <-chan os.Signal) error {
	if cfg.Cluster.Enabled() {
		logRedis(log)
	}
	st, err := openStore(cfg)
	if err != nil {
		return StartError{Err: err}
	}
	if b, ok := st.(*store.Bolt); ok {
		// The relay's cache writes (policies, keys, pins) go to the file
		// together, once a second (README, data_dir).
		st = store.NewBehind(b, behindInterval, func(err error) { log.Warn("store write failed", zap.Error(err)) })
	}
	defer st.Close()
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := metrics.New(reg, Version, metrics.Options{Domains: cfg.Metrics.Domains, TopDomains: cfg.Metrics.TopDomains, Providers: cfg.Metrics.Providers})
	p := newProcess(load, log, level, reg, m, st)
	g, err := p.build(cfg)
	if err != nil {
		return StartError{Err: err}
	}
	return p.runAll(g, sig)
}

// StartError is a failure before the relay started (a configuration that
// does not work: a certificate, data_dir, a port in use): exit status 2,
// like a configuration that does not load.
type StartError struct{ Err error }

func (e StartError) Error() string { return e.Err.Error() }
func (e StartError) Unwrap() error { return e.Err }
