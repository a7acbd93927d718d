package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/caliop/relay/tlsrpt"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/caliop/relay/config"
	"github.com/caliop/relay/policy"
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

// newLogger writes JSON (or console) lines to standard error. Every line
// is kept (no sampling: one line per delivery attempt is a promise), and
// lines are written in batches at most 200 ms apart, which spares two
// write calls per message; Sync (at exit) writes what is left.
func newLogger(c config.Log) (*zap.Logger, error) {
	lvl, err := zap.ParseAtomicLevel(c.Level)
	if err != nil {
		return nil, fmt.Errorf("log.level: %w", err)
	}
	enc := zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig())
	if c.Format == "console" {
		enc = zapcore.NewConsoleEncoder(zap.NewDevelopmentEncoderConfig())
	}
	out := &zapcore.BufferedWriteSyncer{WS: zapcore.AddSync(os.Stderr), Size: 256 << 10, FlushInterval: 200 * time.Millisecond}
	return zap.New(zapcore.NewCore(enc, out, lvl), zap.AddCaller(), zap.ErrorOutput(zapcore.Lock(os.Stderr))), nil
}

// service is one listener of the process: its configuration key (for
// errors), address, how it serves and how it stops.
type service struct {
	key      string
	addr     string
	serve    func(net.Listener) error
	shutdown func(context.Context) error
}

// httpService serves h on addr, TLS when cfg is set.
func httpService(key, addr string, h http.Handler, cfg *tls.Config, log *zap.Logger) service {
	errLog, _ := zap.NewStdLogAt(log.Named(key), zap.DebugLevel) // handshake noise from scanners
	hs := &http.Server{Handler: h, TLSConfig: cfg, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Minute, WriteTimeout: time.Minute, ErrorLog: errLog}
	serve := func(l net.Listener) error {
		if cfg != nil {
			l = tls.NewListener(l, cfg)
		}
		if err := hs.Serve(l); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	}
	return service{key: key, addr: addr, serve: serve, shutdown: hs.Shutdown}
}

// metricsHandler serves /metrics, /healthz (alive) and /readyz (store and
// DNS usable), and takes TLS-RPT reports
// posted by `caliop tlsrpt --receive` (rcv; nil: not).
func metricsHandler(reg *prometheus.Registry, rcv *tlsrpt.Receiver, ready http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/readyz", ready)
	if rcv != nil {
		mux.Handle(tlsrpt.DefaultPath, rcv)
	}
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	return mux
}

// runAll listens on every service's address (all or nothing), serves them,
// then waits for a signal and shuts them all down within grace.
func runAll(services []service, grace time.Duration, log *zap.Logger) error {
	var ls []net.Listener
	for _, s := range services {
		l, err := net.Listen("tcp", s.addr)
		if err != nil {
			for _, l := range ls {
				l.Close()
			}
			return fmt.Errorf("%s: %w", s.key, err)
		}
		ls = append(ls, l)
	}
	errc := make(chan error, len(services))
	for i, s := range services {
		go func() {
			if err := s.serve(ls[i]); err != nil {
				errc <- fmt.Errorf("%s: %w", s.key, err)
			}
		}()
		log.Info("listening", zap.String("service", s.key), zap.String("addr", ls[i].Addr().String()))
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	select {
	case s := <-sig:
		log.Info("shutting down", zap.String("signal", s.String()))
	case err := <-errc:
		for _, l := range ls {
			l.Close()
		}
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	var wg sync.WaitGroup
	for _, s := range services {
		wg.Go(func() {
			if err := s.shutdown(ctx); err != nil {
				log.Warn("shutdown", zap.String("service", s.key), zap.Error(err))
			}
		})
	}
	wg.Wait()
	log.Info("stopped")
	return nil
}

// onceShutdown makes one shutdown shared by several services.
func onceShutdown(f func(context.Context) error) func(context.Context) error {
	var once sync.Once
	var err error
	return func(ctx context.Context) error {
		once.Do(func() { err = f(ctx) })
		return err
	}
}
