package server

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/caliop/relay/config"
	"github.com/caliop/relay/resolver"
	"github.com/caliop/relay/store"
)

// readiness answers /readyz: the store opens and a DNS server answers.
// The verdict is kept a few seconds, so frequent probes cost nothing.
type readiness struct {
	store store.Store
	dns   *resolver.Resolver

	mu   sync.Mutex
	at   time.Time
	last error
}

const readyFor = 5 * time.Second

func (r *readiness) check(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if time.Since(r.at) < readyFor {
		return r.last
	}
	err := r.store.Check()
	if err == nil {
		ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		if derr := r.dns.Ping(ctx); derr != nil {
			err = fmt.Errorf("dns: %w", derr)
		}
	}
	r.at, r.last = time.Now(), err
	return err
}

func (r *readiness) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if err := r.check(req.Context()); err != nil {
		http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	fmt.Fprintln(w, "ready")
}

// Healthcheck asks the running relay's /readyz (for container health
// checks, where no HTTP client is installed): exit 0 ready, 1 not.
func Healthcheck(cfg *config.Config, out, errOut io.Writer) int {
	if cfg.Metrics.Listen == "" {
		fmt.Fprintln(errOut, "caliop: Healthcheck: metrics.listen is empty: no health endpoint")
		return 1
	}
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get("http://" + cfg.Metrics.Listen + "/readyz")
	if err != nil {
		fmt.Fprintln(errOut, "caliop: Healthcheck:", err)
		return 1
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(errOut, "caliop: Healthcheck: %s: %s", resp.Status, b)
		return 1
	}
	fmt.Fprint(out, string(b))
	return 0
}
