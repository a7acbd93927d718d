package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/caliop/relay/config"
	"github.com/caliop/relay/policy"
	"github.com/caliop/relay/resolver"
	"github.com/caliop/relay/tlsrpt"
)

// newEngine makes the policy engine of cfg on sts (nil: set later).
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

// NewLogger writes JSON (or console) lines to standard error. Every line
// is kept (no sampling: one line per delivery attempt is a promise), and
// lines are written in batches at most 200 ms apart, which spares two
// write calls per message; Sync (at exit) writes what is left. Setting
// lvl changes the level of the running logger (reload). Lines carry the
// logger's name (delivery, relay, mta-sts...) but no caller: finding it
// costs a stack walk per line, 2% of the relay's time under load.
func NewLogger(c config.Log) (log *zap.Logger, lvl zap.AtomicLevel, err error) {
	lvl, err = zap.ParseAtomicLevel(c.Level)
	if err != nil {
		return nil, lvl, fmt.Errorf("log.level: %w", err)
	}
	enc := zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig())
	if c.Format == "console" {
		enc = zapcore.NewConsoleEncoder(zap.NewDevelopmentEncoderConfig())
	}
	out := &zapcore.BufferedWriteSyncer{WS: zapcore.AddSync(os.Stderr), Size: 256 << 10, FlushInterval: 200 * time.Millisecond}
	return zap.New(zapcore.NewCore(enc, out, lvl), zap.ErrorOutput(zapcore.Lock(os.Stderr))), lvl, nil
}

// service is one listener of the process: its configuration key (for
// errors), address, how it serves and how it stops.
type service struct {
	key      string
	addr     string
	serve    func(net.Listener) error
	shutdown func(context.Context) error
	// sessions counts the SMTP sessions open, which a reload lets end
	// (or waits a drain window) before its shutdown; nil for an HTTP
	// service, shut down at once (requests in flight finish).
	sessions func() int
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

// onceShutdown makes one shutdown shared by several services.
func onceShutdown(f func(context.Context) error) func(context.Context) error {
	var once sync.Once
	var err error
	return func(ctx context.Context) error {
		once.Do(func() { err = f(ctx) })
		return err
	}
}
