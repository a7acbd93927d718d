package server

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/caliop/relay/certs"
	"github.com/caliop/relay/config"
	"github.com/caliop/relay/delivery"
	"github.com/caliop/relay/policy"
	"github.com/caliop/relay/resolver"
	"github.com/caliop/relay/tlsrpt/tlsrptsend"
)

// generation is everything built from one configuration: resolver,
// caches, policy engine, delivery, servers, their services and background
// work. The running process has one in force; SIGHUP builds the next one
// and, once it took over, lets this one drain and stop.
type generation struct {
	cfg      *config.Config
	dns      []string // the resolvers in use
	services []service
	// finish is the last step of the build, run once the sockets are
	// bound (it may still fail): it opens the MTA-STS cache, which points
	// the process-wide caliop_mtasts_policies gauge at itself.
	finish func() error
	// jobs is the background work, started when the generation takes
	// over and stopped (ctx) when it has stopped serving.
	jobs    []func(context.Context)
	closers []func() // once its servers stopped

	ctx    context.Context
	cancel context.CancelFunc
	jobsWG sync.WaitGroup

	handoffs []*handoff // one per service, set when it takes over
	// counts are the SMTP servers' session counts, one per server.
	counts []func() int
	// sizes are the entries of the structures that grow with the
	// destinations, for caliop_cache_entries.
	sizes   map[string]func() int
	retired atomic.Bool // replaced: its servers' errors no longer matter

	stopOnce    sync.Once
	releaseOnce sync.Once
}

// build makes a generation from cfg on the process's store, metrics and
// logger. Files are read first (certificates, keys), so that one that
// does not load fails the build before anything else is made.
func (p *process) build(cfg *config.Config) (_ *generation, err error) {
	g := &generation{cfg: cfg}
	g.ctx, g.cancel = context.WithCancel(context.Background())
	defer func() {
		if err != nil {
			g.release()
		}
	}()
	outTLS, err := outboundTLS(cfg)
	if err != nil {
		return nil, err
	}
	var src certs.Source
	var acme *certs.ACME
	if cfg.Inbound.Listen != "" {
		if src, acme, err = certSource(cfg, p.store, p.log.Named("certs")); err != nil {
			return nil, err
		}
	}
	res, err := newResolver(cfg)
	if err != nil {
		return nil, err
	}
	g.dns, _ = dnsServers(cfg)
	dialer := &net.Dialer{}
	engine, rec, err := p.buildOutbound(g, outTLS, res, dialer)
	if err != nil {
		return nil, err
	}
	p.buildInbound(g, src, acme)
	if cfg.Metrics.Listen != "" {
		ready := &readiness{store: p.store, dns: res}
		h := metricsHandler(p.reg, tlsrptReceiver(cfg, p.store, receivedMetrics{p.m}), ready)
		g.services = append(g.services, httpService("metrics.listen", cfg.Metrics.Listen, h, nil, p.log))
	}
	for i := range g.services {
		// Retiring and stopping may both ask; the second waits.
		g.services[i].shutdown = onceShutdown(g.services[i].shutdown)
	}
	g.finish = func() error {
		sts, err := newSTS(cfg, p.store, res, dialer.DialContext, rec, p.m, p.log.Named("mta-sts"))
		if err != nil {
			return err
		}
		// No session reads it before the generation takes over.
		engine.STS = sts
		g.sizes["mta-sts"] = sts.Len
		g.jobs = append(g.jobs, func(ctx context.Context) { sts.Run(ctx, time.Minute) },
			func(context.Context) { p.m.WatchSizes(g.sizeOf) })
		return nil
	}
	return g, nil
}

// buildOutbound makes the outbound path of g: TLS-RPT recorder and
// sender, delivery, policy engine, PGP, and the relay's listeners. The
// engine, the MTA-STS cache and the delivery record into the recorder;
// the sender mails reports through the engine and the delivery.
func (p *process) buildOutbound(g *generation, tlsCfg *tls.Config, res *resolver.Resolver, dialer *net.Dialer) (*policy.Engine, *tlsrptsend.Recorder, error) {
	cfg, log, m := g.cfg, p.log, p.m
	topts := tlsrptOptions(cfg, p.store, res, dialer.DialContext, m, log.Named("tlsrpt"))
	rec, err := tlsrptsend.NewRecorder(topts)
	if err != nil {
		return nil, nil, err
	}
	pool := &delivery.Pool{Idle: time.Duration(cfg.Outbound.Reuse.Idle), MaxMessages: cfg.Outbound.Reuse.MaxMessages}
	partners := &tlsrptsend.Partners{Next: rec, DNS: res, Metrics: m, Base: g.ctx}
	g.sizes = map[string]func() int{"dns": res.CacheLen, "pool": pool.Len, "tlsrpt-partners": partners.Len}
	g.closers = append(g.closers, pool.Close)
	deliverer := &delivery.Deliverer{
		Hostname:        cfg.Hostname,
		DNS:             res,
		Dial:            dialer.DialContext,
		Port:            cfg.Outbound.MXPort,
		ConnectTimeout:  time.Duration(cfg.Outbound.ConnectTimeout),
		GreetingTimeout: time.Duration(cfg.Outbound.GreetingTimeout),
		Pool:            pool,
		Report:          partners,
		Log:             log.Named("delivery"),
		Metrics:         m,
	}
	engine := newEngine(cfg, res, nil) // its STS comes in finish
	if learner := newLearner(cfg, p.store, log.Named("learned")); learner != nil {
		engine.Learned, engine.LearnEnforce = learner, cfg.Learn.Mode == "enforce"
		deliverer.Learn = learner
		g.sizes["learned"] = learner.Len
		g.jobs = append(g.jobs, func(ctx context.Context) { learner.Run(ctx, time.Minute) },
			func(context.Context) { m.WatchLearned(learner.Counts) })
	}
	topts.SendMail = countedMail(tlsrptsend.Mailer(engine, deliverer), m)
	g.jobs = append(g.jobs, rec.Run, tlsrptsend.NewSender(rec, topts).Run)
	pgp, keys, err := newPGP(cfg, p.store, res, dialer.DialContext, m, log.Named("wkd"))
	if err != nil {
		return nil, nil, err
	}
	if keys != nil {
		g.sizes["wkd"] = keys.Len
		g.jobs = append(g.jobs, func(ctx context.Context) { keys.Run(ctx, 10*time.Minute) })
	}
	srv := newRelay(cfg, tlsCfg, engine, deliverer, pgp, rec, m, log.Named("relay"))
	drain := onceShutdown(srv.Shutdown) // one drain for both listeners
	g.counts = append(g.counts, srv.Sessions)
	if cfg.Outbound.SMTP != "" {
		g.services = append(g.services, service{key: "outbound.smtp", addr: cfg.Outbound.SMTP, serve: srv.ServeSMTP, shutdown: drain, sessions: srv.Sessions})
	}
	if cfg.Outbound.LMTP != "" {
		g.services = append(g.services, service{key: "outbound.lmtp", addr: cfg.Outbound.LMTP, serve: srv.ServeLMTP, shutdown: drain, sessions: srv.Sessions})
	}
	return engine, rec, nil
}

// buildInbound adds the inbound services of g when it has a certificate
// source (inbound.listen set).
func (p *process) buildInbound(g *generation, src certs.Source, acme *certs.ACME) {
	if src == nil {
		// No certificate to watch any more (after a reload).
		g.jobs = append(g.jobs, func(context.Context) { p.m.WatchCertificates(func() map[string]time.Time { return nil }) })
		return
	}
	in, jobs := inboundServices(g.cfg, src, acme, p.store, p.m, p.log)
	g.services = append(g.services, in...)
	for _, svc := range in {
		if svc.sessions != nil {
			g.counts = append(g.counts, svc.sessions)
		}
	}
	g.jobs = append(g.jobs, jobs...)
}

// outboundTLS loads the outbound listeners' STARTTLS certificate, if any.
func outboundTLS(cfg *config.Config) (*tls.Config, error) {
	if cfg.Outbound.TLS.Cert == "" {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(cfg.Outbound.TLS.Cert, cfg.Outbound.TLS.Key)
	if err != nil {
		return nil, fmt.Errorf("outbound.tls: %w", err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

// sizeOf reads g's structure sizes.
func (g *generation) sizeOf() map[string]int {
	out := make(map[string]int, len(g.sizes))
	for name, n := range g.sizes {
		out[name] = n()
	}
	return out
}

// sessions is the number of SMTP sessions g's servers hold open.
func (g *generation) sessions() int {
	n := 0
	for _, count := range g.counts {
		n += count()
	}
	return n
}

// start runs the background jobs.
func (g *generation) start() {
	for _, j := range g.jobs {
		g.jobsWG.Go(func() { j(g.ctx) })
	}
}

// stop shuts every service down within ctx (sessions in a transaction
// finish, idle ones get 421), then stops the background work. A second
// call waits for the first.
func (g *generation) stop(ctx context.Context, log *zap.Logger) {
	g.stopOnce.Do(func() {
		var wg sync.WaitGroup
		for _, s := range g.services {
			wg.Go(func() {
				if err := s.shutdown(ctx); err != nil {
					log.Warn("shutdown", zap.String("service", s.key), zap.Error(err))
				}
			})
		}
		wg.Wait()
		for _, h := range g.handoffs {
			h.Close() // in case a server was stopped before it served
		}
		g.release()
		// The TLS-RPT reporter flushes its counts as it ends.
		done := make(chan struct{})
		go func() { g.jobsWG.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(jobsStopTimeout):
			log.Warn("background work still running", zap.Duration("after", jobsStopTimeout))
		}
	})
}

// jobsStopTimeout bounds the wait for background work to end.
const jobsStopTimeout = 10 * time.Second

// release ends the background work and closes what the generation holds
// (after stop, or when the build failed).
func (g *generation) release() {
	g.releaseOnce.Do(func() {
		g.cancel()
		for _, c := range g.closers {
			c()
		}
	})
}

// grace is how long shutting down may take: a transaction in flight gets
// its delivery timeout.
func grace(cfg *config.Config) time.Duration {
	return time.Duration(cfg.Outbound.DeliveryTimeout) + 5*time.Second
}
