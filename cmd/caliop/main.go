// Command caliop runs the Caliop relay. It only wires: flags, configuration,
// components, signals.
package main

import (
	"crypto/tls"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.uber.org/zap"

	"github.com/caliop/relay/config"
	"github.com/caliop/relay/delivery"
	"github.com/caliop/relay/metrics"
	"github.com/caliop/relay/pgppolicy"
	"github.com/caliop/relay/policy"
	"github.com/caliop/relay/relay"
)

// version is stamped at build time: -ldflags "-X main.version=1.2.3".
var version = "dev"

func main() {
	if os.Getenv("GOGC") == "" {
		// The heap is small (tens of MiB) and churns with every message:
		// collecting it three times less often buys about 7% of
		// throughput for about 20 MiB (README, Benchmark). GOGC overrides.
		debug.SetGCPercent(300)
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// serve runs the relay until SIGTERM or SIGINT; SIGHUP reloads the
// configuration through load (the file given at start).
func serve(cfg *config.Config, load func() (*config.Config, error)) error {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer signal.Stop(sig)
	log, level, err := newLogger(cfg.Log)
	if err != nil {
		return startError{err}
	}
	defer log.Sync()
	return serveWith(cfg, load, log, level, sig)
}

// serveWith makes what lives as long as the process (store, metrics
// registry), builds the first generation from cfg and runs it, taking
// signals from sig.
func serveWith(cfg *config.Config, load func() (*config.Config, error), log *zap.Logger, level zap.AtomicLevel, sig <-chan os.Signal) error {
	if cfg.Cluster.Enabled() {
		logRedis(log)
	}
	st, err := openStore(cfg)
	if err != nil {
		return startError{err}
	}
	defer st.Close()
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := metrics.New(reg, version, metrics.Options{Domains: cfg.Metrics.Domains, TopDomains: cfg.Metrics.TopDomains, Providers: cfg.Metrics.Providers})
	p := newProcess(load, log, level, reg, m, st)
	g, err := p.build(cfg)
	if err != nil {
		return startError{err}
	}
	return p.runAll(g, sig)
}

// startError is a failure before the relay started (a configuration that
// does not work: a certificate, data_dir, a port in use): exit status 2,
// like a configuration that does not load.
type startError struct{ error }

func (e startError) Unwrap() error { return e.error }

// newRelay builds the outbound listeners' server; tlsCfg (see
// outboundTLS) offers STARTTLS.
func newRelay(cfg *config.Config, tlsCfg *tls.Config, engine *policy.Engine, d *delivery.Deliverer, pgp *pgppolicy.Policy, m *metrics.Metrics, log *zap.Logger) *relay.Server {
	return relay.New(relay.Options{
		Hostname: cfg.Hostname,
		Trusted:  prefixes(cfg.Outbound.TrustedNetworks),
		Users:    cfg.Outbound.Auth.Users,
		AuthLimits: relay.AuthLimits{
			PerAddress: cfg.Outbound.Auth.MaxFailuresPerIP,
			Window:     time.Duration(cfg.Outbound.Auth.FailureWindow),
		},
		ConnLimits: relay.ConnLimits{
			MaxConnections:  cfg.Outbound.Limits.MaxConnections,
			MaxPerTrustedIP: cfg.Outbound.Limits.MaxPerTrustedIP,
			MaxPerIP:        cfg.Outbound.Limits.MaxPerIP,
		},
		TLS:                 tlsCfg,
		MaxMessageSize:      int64(cfg.Outbound.MaxMessageSize),
		MaxLine:             cfg.Outbound.MaxLine,
		MemoryBuffer:        int64(cfg.Outbound.MemoryBuffer),
		DeliveryTimeout:     time.Duration(cfg.Outbound.DeliveryTimeout),
		Parallel:            cfg.Outbound.Parallel,
		HonourTLSRequiredNo: cfg.Outbound.HonourTLSRequiredNo,
		PGP:                 encrypter(pgp),
		Planner:             engine,
		Deliverer:           d,
		Metrics:             m,
		Log:                 log,
	})
}

// encrypter keeps a nil policy a nil interface.
func encrypter(p *pgppolicy.Policy) relay.Encrypter {
	if p == nil {
		return nil
	}
	return p
}
