package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"

	"github.com/caliop/relay/config"
	"github.com/caliop/relay/policy"
	"github.com/caliop/relay/relay"
	"github.com/caliop/relay/resolver"
)

func newEngine(cfg *config.Config, res *resolver.Resolver, sts policy.STSCache) *policy.Engine {
	req := func(l config.Level, min config.TLSVersion) policy.Requirement {
		if l == config.LevelMTASTS || l == config.LevelDANE {
			// What an enforced policy requires; the engine also
			// requires that one be in force (STSRequired).
			l = config.LevelVerify
		}
		lv, _ := policy.ParseLevel(string(l)) // config checked the names
		return policy.Requirement{Level: lv, MinTLS: uint16(min)}
	}
	e := &policy.Engine{
		DNS:          res,
		Default:      req(cfg.Outbound.Default, cfg.Outbound.MinTLS),
		Overrides:    map[string]policy.Requirement{},
		STSRequired:  map[string]bool{},
		STS:          sts,
		TLSA:         res,
		DANERequired: map[string]bool{},
	}
	for d, p := range cfg.Outbound.Domains {
		e.Overrides[d] = req(p.Level, p.MinTLS)
		switch p.Level {
		case config.LevelMTASTS:
			e.STSRequired[d] = true
		case config.LevelDANE:
			e.DANERequired[d] = true
		}
	}
	return e
}

func prefixes(ps []config.Prefix) []netip.Prefix {
	out := make([]netip.Prefix, len(ps))
	for i, p := range ps {
		out[i] = p.Prefix
	}
	return out
}

func newLogger(c config.Log) (*zap.Logger, error) {
	zc := zap.NewProductionConfig()
	if c.Format == "console" {
		zc = zap.NewDevelopmentConfig()
	}
	lvl, err := zap.ParseAtomicLevel(c.Level)
	if err != nil {
		return nil, fmt.Errorf("log.level: %w", err)
	}
	zc.Level = lvl
	return zc.Build()
}

// runAll listens on every configured address, then waits for a signal and
// shuts down within the delivery budget.
func runAll(cfg *config.Config, srv *relay.Server, reg *prometheus.Registry, log *zap.Logger) error {
	var ls []net.Listener
	closeAll := func() {
		for _, l := range ls {
			l.Close()
		}
	}
	listen := func(addr string) (net.Listener, error) {
		l, err := net.Listen("tcp", addr)
		if err == nil {
			ls = append(ls, l)
		}
		return l, err
	}
	errc := make(chan error, 3)
	if cfg.Outbound.SMTP != "" {
		l, err := listen(cfg.Outbound.SMTP)
		if err != nil {
			closeAll()
			return fmt.Errorf("outbound.smtp: %w", err)
		}
		go func() { errc <- srv.ServeSMTP(l) }()
	}
	if cfg.Outbound.LMTP != "" {
		l, err := listen(cfg.Outbound.LMTP)
		if err != nil {
			closeAll()
			return fmt.Errorf("outbound.lmtp: %w", err)
		}
		go func() { errc <- srv.ServeLMTP(l) }()
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	if cfg.Metrics.Listen != "" {
		l, err := listen(cfg.Metrics.Listen)
		if err != nil {
			closeAll()
			return fmt.Errorf("metrics.listen: %w", err)
		}
		go func() {
			if err := hs.Serve(l); !errors.Is(err, http.ErrServerClosed) {
				errc <- err
			}
		}()
	}
	log.Info("started", zap.String("hostname", cfg.Hostname), zap.String("smtp", cfg.Outbound.SMTP), zap.String("lmtp", cfg.Outbound.LMTP), zap.String("metrics", cfg.Metrics.Listen), zap.Strings("dns", cfg.DNS.Servers))

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	select {
	case s := <-sig:
		log.Info("shutting down", zap.String("signal", s.String()))
	case err := <-errc:
		closeAll()
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(cfg.Outbound.DeliveryTimeout)+5*time.Second)
	defer cancel()
	err := srv.Shutdown(ctx)
	hs.Shutdown(ctx)
	log.Info("stopped", zap.Error(err))
	return nil
}
