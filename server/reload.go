package server

import (
	"context"
	"fmt"
	"net"
	"os"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/caliop/relay/config"
	"github.com/caliop/relay/metrics"
	"github.com/caliop/relay/store"
)

// process is what one `caliop serve` keeps from start to exit: the
// logger and its level, the metrics registry (a collector registers only
// once), the store, and the listening sockets. Everything else belongs
// to the generation in force, which SIGHUP replaces.
type process struct {
	load  func() (*config.Config, error) // reads the configuration again
	log   *zap.Logger
	level zap.AtomicLevel
	reg   *prometheus.Registry
	m     *metrics.Metrics
	store store.Store

	gen     *generation
	sockets map[string]*socket // by socketID
	errc    chan error         // a server or an accept loop failed

	stopping chan struct{} // closed at SIGTERM: retiring generations stop waiting
	mu       sync.Mutex
	retiring map[*generation]bool
}

func newProcess(load func() (*config.Config, error), log *zap.Logger, level zap.AtomicLevel, reg *prometheus.Registry, m *metrics.Metrics, st store.Store) *process {
	return &process{
		load: load, log: log, level: level, reg: reg, m: m, store: st,
		sockets:  map[string]*socket{},
		errc:     make(chan error, 1),
		stopping: make(chan struct{}),
		retiring: map[*generation]bool{},
	}
}

// runAll binds every service's address of g (all or nothing), serves,
// and then handles sig: SIGHUP reloads, SIGTERM and SIGINT shut down
// within the delivery timeout. It returns when the process should exit.
func (p *process) runAll(g *generation, sig <-chan os.Signal) error {
	fresh, err := p.bind(g)
	if err != nil {
		g.release()
		return StartError{Err: err}
	}
	p.commit(g, fresh)
	// Only now: every listener is bound.
	p.log.Info("started", zap.String("hostname", g.cfg.Hostname), zap.Strings("dns", g.dns), zap.String("version", Version))
	for {
		select {
		case s := <-sig:
			if s == syscall.SIGHUP {
				p.reload()
				continue
			}
			p.log.Info("shutting down", zap.String("signal", s.String()))
			p.shutdown(grace(p.gen.cfg))
			p.log.Info("stopped")
			return nil
		case err := <-p.errc:
			p.shutdown(0)
			return err
		}
	}
}

// reload reads the configuration again and, if it is valid and its
// generation builds and binds, puts it in force; otherwise the running
// one stays, and the reason is logged.
func (p *process) reload() {
	p.log.Info("reloading the configuration")
	g, fresh, restart, err := p.prepare()
	if err != nil {
		p.log.Error("reload failed, keeping the running configuration", zap.Error(err))
		return
	}
	old := p.gen
	changed := changedKeys(old.cfg, g.cfg)
	p.commit(g, fresh)
	if len(restart) > 0 {
		p.log.Warn("not applied until restart", zap.Strings("keys", restart))
	}
	p.log.Info("configuration reloaded", zap.Strings("changed", changed), zap.String("hostname", g.cfg.Hostname))
	p.mu.Lock()
	p.retiring[old] = true
	p.mu.Unlock()
	go p.retire(old)
}

// prepare builds the next generation: the same checks as at start, then
// the build and the new addresses bound. restart lists the keys that
// changed but only apply at the next start (their running values are
// kept).
func (p *process) prepare() (g *generation, fresh map[string]*socket, restart []string, err error) {
	cfg, err := p.load()
	if err != nil {
		return nil, nil, nil, err
	}
	if _, err := zapcore.ParseLevel(cfg.Log.Level); err != nil {
		return nil, nil, nil, fmt.Errorf("log.level: %w", err)
	}
	restart = keepRestartKeys(p.gen.cfg, cfg)
	if g, err = p.build(cfg); err != nil {
		return nil, nil, nil, err
	}
	if fresh, err = p.bind(g); err != nil {
		g.release()
		return nil, nil, nil, err
	}
	return g, fresh, restart, nil
}

// bind checks g's addresses, binds those no socket holds yet, and
// finishes g's build; on error nothing stays bound.
func (p *process) bind(g *generation) (map[string]*socket, error) {
	fresh := map[string]*socket{}
	fail := func(err error) (map[string]*socket, error) {
		for _, s := range fresh {
			s.close()
		}
		return nil, err
	}
	keys := map[string]string{}
	for _, s := range g.services {
		id := socketID(s)
		if k, ok := keys[id]; ok {
			return fail(fmt.Errorf("%s and %s both listen on %s", k, s.key, s.addr))
		}
		keys[id] = s.key
		if p.sockets[id] != nil {
			continue
		}
		so, err := listen(s.addr)
		if err != nil {
			return fail(fmt.Errorf("%s: %w", s.key, err))
		}
		fresh[id] = so
	}
	if err := g.finish(); err != nil {
		return fail(err)
	}
	return fresh, nil
}

// commit puts g in force: its servers take the sockets it shares with
// the previous generation (connections from then on go to them), the
// fresh ones start accepting, and those it no longer uses close.
func (p *process) commit(g *generation, fresh map[string]*socket) {
	for id, s := range fresh {
		p.sockets[id] = s
	}
	for _, svc := range g.services {
		so := p.sockets[socketID(svc)]
		h := newHandoff(so.l.Addr())
		g.handoffs = append(g.handoffs, h)
		go func() {
			defer h.Close() // a server that ended takes no more connections
			if err := svc.serve(h); err != nil && !g.retired.Load() {
				p.fail(fmt.Errorf("%s: %w", svc.key, err))
			}
		}()
	}
	used := map[string]bool{}
	for i, svc := range g.services {
		id := socketID(svc)
		used[id] = true
		p.sockets[id].swap(g.handoffs[i])
		if fresh[id] != nil {
			p.log.Info("listening", zap.String("service", svc.key), zap.String("addr", fresh[id].l.Addr().String()))
		}
	}
	for id, so := range p.sockets {
		if !used[id] {
			so.close()
			delete(p.sockets, id)
			p.log.Info("stopped listening", zap.String("addr", so.l.Addr().String()))
		}
	}
	for _, so := range fresh {
		go func() {
			if err := so.run(p.log); err != nil {
				p.fail(fmt.Errorf("%s: %w", so.addr, err))
			}
		}()
	}
	p.level.SetLevel(mustLevel(g.cfg.Log.Level))
	g.start()
	p.gen = g
}

// socketID names the socket a service listens on across reloads: its
// address, so that two services may swap addresses; with port 0 (any
// free port, in tests) the service's key too, as each such service has
// its own port.
func socketID(s service) string {
	if _, port, err := net.SplitHostPort(s.addr); err == nil && port == "0" {
		return s.key + " " + s.addr
	}
	return s.addr
}

// fail reports the error that ends the process; the first one wins.
func (p *process) fail(err error) {
	select {
	case p.errc <- err:
	default:
	}
}

// drainPoll is how often a retiring generation asks its servers whether
// their sessions ended.
const drainPoll = 50 * time.Millisecond

// retire stops g, which a reload replaced. It no longer receives
// connections; its HTTP services stop now, its SMTP sessions go on with
// the configuration they started with until they end, for at most a
// drain window of g's delivery timeout; then it shuts down as at SIGTERM
// (transactions in flight finish, idle sessions get 421) and its
// background work ends.
func (p *process) retire(g *generation) {
	g.retired.Store(true)
	defer func() {
		p.mu.Lock()
		delete(p.retiring, g)
		p.mu.Unlock()
	}()
	httpCtx, cancel := context.WithTimeout(context.Background(), grace(g.cfg))
	defer cancel()
	for _, s := range g.services {
		if s.sessions == nil {
			go s.shutdown(httpCtx)
		}
	}
	drain := time.NewTimer(time.Duration(g.cfg.Outbound.DeliveryTimeout))
	defer drain.Stop()
	poll := time.NewTicker(drainPoll)
	defer poll.Stop()
wait:
	for g.sessions() > 0 {
		select {
		case <-poll.C:
		case <-drain.C:
			p.log.Info("drain window over, closing the remaining sessions", zap.Int("sessions", g.sessions()))
			break wait
		case <-p.stopping:
			break wait
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), grace(g.cfg))
	defer cancel()
	g.stop(ctx, p.log)
	p.log.Info("previous configuration retired", zap.String("hostname", g.cfg.Hostname))
}

// shutdown stops accepting, then stops every generation within grace.
func (p *process) shutdown(grace time.Duration) {
	close(p.stopping)
	for _, so := range p.sockets {
		so.close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	p.mu.Lock()
	gens := []*generation{p.gen}
	for g := range p.retiring {
		gens = append(gens, g)
	}
	p.mu.Unlock()
	var wg sync.WaitGroup
	for _, g := range gens {
		wg.Go(func() { g.stop(ctx, p.log) })
	}
	wg.Wait()
}

// mustLevel parses a level that was checked before.
func mustLevel(s string) zapcore.Level {
	l, err := zapcore.ParseLevel(s)
	if err != nil {
		return zapcore.InfoLevel
	}
	return l
}

// restartKeys are the settings a reload does not change: the store is
// opened once per process, the domain labels of the metrics and the log
// encoder are made once. ("cluster" is matched when the configuration has
// it.)
var restartKeys = []string{"data_dir", "cluster", "metrics.domains", "metrics.top_domains", "metrics.providers", "log.format"}

// keepRestartKeys gives cfg the running values of restartKeys and
// returns those that differed.
func keepRestartKeys(running, cfg *config.Config) []string {
	var kept []string
	for _, k := range restartKeys {
		old, ok1 := yamlField(reflect.ValueOf(running).Elem(), k)
		cur, ok2 := yamlField(reflect.ValueOf(cfg).Elem(), k)
		if !ok1 || !ok2 || reflect.DeepEqual(old.Interface(), cur.Interface()) {
			continue
		}
		cur.Set(old)
		kept = append(kept, k)
	}
	return kept
}

// changedKeys lists the settings that differ, by their YAML names, two
// levels deep ("hostname", "outbound.delivery_timeout"). Values are not
// logged: some are secrets.
func changedKeys(a, b *config.Config) []string {
	var out []string
	var walk func(path string, a, b reflect.Value, depth int)
	walk = func(path string, a, b reflect.Value, depth int) {
		if a.Kind() != reflect.Struct || depth == 2 {
			if !reflect.DeepEqual(a.Interface(), b.Interface()) {
				out = append(out, path)
			}
			return
		}
		for i := range a.NumField() {
			f := a.Type().Field(i)
			name := yamlName(f)
			if name == "" || !f.IsExported() {
				continue
			}
			if path != "" {
				name = path + "." + name
			}
			walk(name, a.Field(i), b.Field(i), depth+1)
		}
	}
	walk("", reflect.ValueOf(a).Elem(), reflect.ValueOf(b).Elem(), 0)
	return out
}

// yamlField is the field of struct v at a dotted path of YAML names.
func yamlField(v reflect.Value, path string) (reflect.Value, bool) {
	for name := range strings.SplitSeq(path, ".") {
		for v.Kind() == reflect.Pointer {
			if v.IsNil() {
				return reflect.Value{}, false
			}
			v = v.Elem()
		}
		if v.Kind() != reflect.Struct {
			return reflect.Value{}, false
		}
		found := false
		for i := range v.NumField() {
			if f := v.Type().Field(i); f.IsExported() && yamlName(f) == name {
				v, found = v.Field(i), true
				break
			}
		}
		if !found {
			return reflect.Value{}, false
		}
	}
	return v, true
}

// yamlName is a field's key in the file ("" when it has none).
func yamlName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	if name == "-" {
		return ""
	}
	if name == "" {
		return strings.ToLower(f.Name)
	}
	return name
}
