package learned

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/caliop/relay/internal/deltas"
	"github.com/caliop/relay/internal/every"
)

// Bucket is the store bucket of the records, one per domain.
const Bucket = "learned"

// Store keeps the records; *store.Bolt and *store.Redis are ones.
type Store interface {
	Get(bucket, key string, v any) (bool, error)
	Delete(bucket, key string) error
	ForEach(bucket string, fn func(key string, value []byte) error) error
	// UpdateEach changes records, each atomically, also when replicas
	// share the store.
	UpdateEach(bucket string, keys []string, fn func(key string, old []byte) ([]byte, error)) map[string]error
}

// Config configures a Learner.
type Config struct {
	Store Store
	Rules Rules
	// Exclude lists domains never learned: "example.com" itself,
	// ".example.com" its subdomains (Postfix's convention).
	Exclude []string
	Now     func() time.Time // nil: time.Now
	Log     *zap.Logger      // nil: none
	// Promoted, when set, is told of each promotion and expiry (a
	// metric).
	Promoted func(domain string, r Requirement, promoted bool)
}

// Learner counts sessions and keeps the learned requirements in force.
// Safe for concurrent use.
type Learner struct {
	cfg     Config
	pending *deltas.Map[Record] // counts not yet in the store

	mu    sync.Mutex
	known map[string]Record // requirements in force, as last read
}

// New returns a Learner on cfg.Store.
func New(cfg Config) *Learner {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = zap.NewNop()
	}
	if cfg.Rules == (Rules{}) {
		cfg.Rules = DefaultRules
	}
	return &Learner{cfg: cfg, pending: deltas.New(func(into, from *Record) { into.add(from) }), known: map[string]Record{}}
}

// Observe counts one new session to mx for domain that met its plan:
// authenticated (a certificate valid in the WebPKI for the MX name, or
// a DANE match; dane says which) or only encrypted.
func (l *Learner) Observe(domain, mx string, authenticated, dane bool) {
	domain = normalise(domain)
	if domain == "" || l.excluded(domain) {
		return
	}
	now := l.cfg.Now()
	mx = normalise(mx)
	l.pending.Update(domain, func(d *Record) {
		d.Domain = domain
		if !authenticated {
			d.Encrypted++
			d.LastEncrypted = now
			return
		}
		d.Sessions++
		if dane {
			d.DANESessions++
		}
		if d.FirstAuth.IsZero() {
			d.FirstAuth = now
		}
		d.LastAuth = now
		if !slices.Contains(d.MX, mx) && len(d.MX) < maxMX {
			d.MX = append(d.MX, mx)
		}
	})
}

// Lookup returns domain's record when it carries a learned requirement
// that has not lapsed.
func (l *Learner) Lookup(domain string) (Record, bool) {
	domain = normalise(domain)
	l.mu.Lock()
	defer l.mu.Unlock()
	r, ok := l.known[domain]
	if !ok || !l.cfg.Now().Before(r.Expires(l.cfg.Rules)) {
		return Record{}, false
	}
	return r, true
}

// Len is the number of domains held in memory: requirements in force
// and counts not yet flushed.
func (l *Learner) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.known) + l.pending.Len()
}

// Counts is the number of learned requirements in force, by
// requirement (caliop_learned_policies).
func (l *Learner) Counts() map[string]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string]int{string(Verify): 0, string(DANE): 0}
	for _, r := range l.known {
		out[string(r.Requirement)]++
	}
	return out
}

// FlushEvery is how many reloads Run makes per flush: counts reach the
// store every FlushEvery intervals, one transaction for the domains seen
// meanwhile in the embedded store (a key each in Redis). Learning takes days: a crash loses minutes of counts.
const FlushEvery = 10

// Run reads the requirements in force every interval (other replicas'
// promotions, `caliop learned forget`) and flushes the counts every
// FlushEvery intervals, until ctx ends; it flushes once more before
// returning.
func (l *Learner) Run(ctx context.Context, interval time.Duration) {
	tick := 0
	every.Run(ctx, interval, func(context.Context) {
		if tick++; tick%FlushEvery == 0 {
			if err := l.Flush(); err != nil {
				l.cfg.Log.Warn("learned policies: flush failed", zap.Error(err))
			}
		}
		if err := l.Reload(); err != nil {
			l.cfg.Log.Warn("learned policies: reload failed", zap.Error(err))
		}
	})
	if err := l.Flush(); err != nil {
		l.cfg.Log.Error("learned policies: counts lost", zap.Error(err))
	}
}

// Flush adds the pending counts to the store, one atomic update per
// domain (one transaction for them all in the embedded store), and
// promotes the domains that now meet the rules. On error a domain's
// counts go back to memory for the next flush.
func (l *Learner) Flush() error {
	if err := l.pending.FlushAll(l.write); err != nil {
		return fmt.Errorf("learned: %w", err)
	}
	return nil
}

// write adds each domain's delta to its stored record and notes the
// promotions of the records written.
func (l *Learner) write(todo map[string]*Record) map[string]error {
	now := l.cfg.Now()
	promoted := map[string]Record{}
	failed := l.cfg.Store.UpdateEach(Bucket, slices.Sorted(maps.Keys(todo)), func(domain string, old []byte) ([]byte, error) {
		delete(promoted, domain) // fn may run again (Redis)
		r := Record{Domain: domain}
		if old != nil {
			if err := json.Unmarshal(old, &r); err != nil {
				return nil, err
			}
		}
		if r.Requirement != None && !now.Before(r.Expires(l.cfg.Rules)) {
			r = Record{Domain: domain} // lapsed: learning starts over
		}
		r.add(todo[domain])
		if r.promote(l.cfg.Rules, now) {
			promoted[domain] = r
		}
		return json.Marshal(&r)
	})
	for _, domain := range slices.Sorted(maps.Keys(promoted)) {
		if failed[domain] == nil {
			l.notePromoted(promoted[domain])
		}
	}
	return failed
}

// notePromoted logs a promotion and puts it in force.
func (l *Learner) notePromoted(r Record) {
	l.cfg.Log.Info("learned policy promoted", zap.String("domain", r.Domain), zap.String("requirement", string(r.Requirement)),
		zap.Int("sessions", r.Sessions), zap.Strings("mx", r.MX), zap.Time("first_auth", r.FirstAuth))
	l.mu.Lock()
	l.known[r.Domain] = r
	l.mu.Unlock()
	if l.cfg.Promoted != nil {
		l.cfg.Promoted(r.Domain, r.Requirement, true)
	}
}

// Reload reads the requirements in force from the store; lapsed ones are
// deleted (logged as expired).
func (l *Learner) Reload() error {
	now := l.cfg.Now()
	known := map[string]Record{}
	var lapsed []Record
	err := l.cfg.Store.ForEach(Bucket, func(key string, value []byte) error {
		var r Record
		if json.Unmarshal(value, &r) != nil || r.Requirement == None {
			return nil
		}
		if !now.Before(r.Expires(l.cfg.Rules)) {
			lapsed = append(lapsed, r)
			return nil
		}
		known[key] = r
		return nil
	})
	if err != nil {
		return err
	}
	for _, r := range lapsed {
		if err := l.cfg.Store.Delete(Bucket, r.Domain); err != nil {
			return err
		}
		l.cfg.Log.Info("learned policy expired", zap.String("domain", r.Domain), zap.String("requirement", string(r.Requirement)), zap.Time("last_auth", r.LastAuth))
		if l.cfg.Promoted != nil {
			l.cfg.Promoted(r.Domain, r.Requirement, false)
		}
	}
	l.mu.Lock()
	l.known = known
	l.mu.Unlock()
	return nil
}

// excluded reports whether domain is never learned.
func (l *Learner) excluded(domain string) bool {
	for _, x := range l.cfg.Exclude {
		x = strings.ToLower(x)
		if x == domain || strings.HasPrefix(x, ".") && strings.HasSuffix(domain, x) {
			return true
		}
	}
	return false
}

// List returns every record in st, sorted by domain.
func List(st Store) ([]Record, error) {
	var out []Record
	err := st.ForEach(Bucket, func(key string, value []byte) error {
		var r Record
		if err := json.Unmarshal(value, &r); err != nil {
			return fmt.Errorf("%s: %w", key, err)
		}
		out = append(out, r)
		return nil
	})
	slices.SortFunc(out, func(a, b Record) int { return strings.Compare(a.Domain, b.Domain) })
	return out, err
}

// Forget deletes domain's record from st: learning starts over. A
// running relay drops the requirement at its next reload.
func Forget(st Store, domain string) error {
	return st.Delete(Bucket, normalise(domain))
}

func normalise(s string) string { return strings.ToLower(strings.TrimSuffix(s, ".")) }
