// Package tlsrptsend keeps the TLS-RPT (RFC 8460) outcomes of Caliop's
// outbound sessions per policy domain and UTC day in the store,
// and once a day sends each domain that asks for it (its _smtp._tls TXT
// record) the report of the day before: by HTTPS POST or by mail through
// Caliop's own outbound path (Mailer). A Recorder keeps the counts, a
// Sender sends what its Recorder kept. It sits above package tlsrpt, which knows
// the standard but not the relay.
//
// Outcomes are counted in memory and added to the store every
// FlushInterval and at the end of Run, so that a session costs no store
// write; a crash loses at most that interval. Additions are atomic, so
// replicas sharing a store (cluster mode) add up. What was sent is kept
// per domain and day, and a store lock lets one replica send a day's
// reports: neither a restart nor a second replica sends a report twice.
package tlsrptsend

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/caliop/relay/internal/deltas"
	"github.com/caliop/relay/resolver"
	"github.com/caliop/relay/tlsrpt"
)

// Store buckets.
const (
	// countsBucket holds one value per UTC day ("2006-01-02"): the counts
	// of every domain that day.
	countsBucket = "tlsrpt"
	// sentBucket holds the delivery state per day and domain
	// ("2006-01-02/example.com").
	sentBucket = "tlsrpt-sent"
)

// Defaults of Options.
const (
	DefaultFlushInterval = 5 * time.Second
	DefaultMaxAttempts   = 5
	DefaultRetryAfter    = 10 * time.Minute
	DefaultKeepDays      = 7
	DefaultSendTimeout   = time.Minute
)

// TXTResolver looks up the _smtp._tls record; *resolver.Resolver is one.
type TXTResolver interface {
	LookupTXT(ctx context.Context, name string) ([]string, resolver.Result, error)
}

// Store persists counts and delivery state; *store.Store is one.
type Store interface {
	Get(bucket, key string, v any) (bool, error)
	Put(bucket, key string, v any) error
	Delete(bucket, key string) error
	ForEach(bucket string, fn func(key string, value []byte) error) error
	// Update adds counts atomically, also when replicas share the store.
	Update(bucket, key string, fn func(old []byte) ([]byte, error)) error
	// Lock makes one replica of several send a day's reports.
	Lock(name string, ttl time.Duration) (unlock func(), err error)
}

// SendMail delivers one report message to one address through Caliop's
// outbound path. It must not record TLS-RPT outcomes for that delivery
// (RFC 8460 §5.3: the report's own session is not reported) and should
// deliver despite the destination's policy failures ("TLS-Required: No",
// RFC 8689 §5). A nil error means the MX answered 250.
type SendMail func(ctx context.Context, from, to string, msg []byte) error

// Options configure a Reporter. Store is required; DNS, HTTP and
// SendMail are needed only to send (Run).
type Options struct {
	Store Store
	DNS   TXTResolver
	// HTTP posts reports to https: URIs; nil is a client with
	// DefaultSendTimeout on the system resolver.
	HTTP     *http.Client
	SendMail SendMail

	// OrganizationName and ContactInfo go into every report (RFC 8460
	// §4.4); Submitter is the sending host's domain name, in the report
	// file name and the TLS-Report-Submitter header (§5.1, §5.3).
	OrganizationName string
	ContactInfo      string
	Submitter        string
	// From is the sender address of mailed reports.
	From string

	Now func() time.Time // nil: time.Now
	// CountOnly keeps the counts (for `caliop tlsrpt --print` and a later
	// change of mind) but sends no report (tlsrpt.enabled: false).
	CountOnly bool
	// Delay is how long after 00:00 UTC the day's reports are sent,
	// asked once per day; nil is a random time between the first minute
	// and the first hour, so that reporters do not all post at midnight
	// and every replica has flushed the day's last counts.
	Delay func() time.Duration
	// FlushInterval: DefaultFlushInterval if zero.
	FlushInterval time.Duration
	// MaxAttempts per domain and day: DefaultMaxAttempts if zero.
	MaxAttempts int
	// RetryAfter is the wait after the first failed attempt, tripled after
	// each further one: DefaultRetryAfter if zero.
	RetryAfter time.Duration
	// KeepDays is how many days of counts are kept (at least 3):
	// DefaultKeepDays if zero.
	KeepDays int
	Log      *zap.Logger // nil: no logging
}

// Recorder counts outcomes per policy domain and UTC day (it is a
// tlsrpt.Recorder) and adds them to the store (Run, Flush); it builds a
// day's report from them (Report). It needs nothing of the outbound path,
// so the policy engine and the delivery can record into it before the
// Sender, which mails through them, is made.
type Recorder struct {
	store      Store
	now        func() time.Time
	flushEvery time.Duration
	// The reporting organization (RFC 8460 §4.4) and host (§5.1).
	org, contact, submitter string
	log                     *zap.Logger

	// pending is what this process counted since its last flush, per
	// day: deltas, added to the stored day by Store.Update, so that
	// replicas sharing one store add up instead of overwriting.
	pending *deltas.Map[storedDay]

	flushMu sync.Mutex // one flush at a time
}

var _ tlsrpt.Recorder = (*Recorder)(nil)

// Sender sends, once a day, each domain that asks for it the report of
// the day before, built by its Recorder (RFC 8460 §5).
type Sender struct {
	o   Options
	log *zap.Logger
	rec *Recorder

	sendMu   sync.Mutex
	delays   map[string]time.Duration // per day, once drawn
	finished map[string]bool          // days whose every domain is done
	wake     map[string]time.Time     // per day, the earliest retry
	cleaned  string                   // the last cleanup's limit
}

// Reporter is a Recorder and its Sender, for a process that has its
// mailer at hand when it makes them.
type Reporter struct {
	*Recorder
	*Sender
}

// ErrNoStore: Options.Store is nil.
var ErrNoStore = errors.New("tlsrptsend: no store")

// New returns a Reporter on o.Store.
func New(o Options) (*Reporter, error) {
	rec, err := NewRecorder(o)
	if err != nil {
		return nil, err
	}
	return &Reporter{Recorder: rec, Sender: NewSender(rec, o)}, nil
}

// NewRecorder returns a Recorder on o.Store; of o it reads Store, Now,
// FlushInterval, the reporting organization and Log.
func NewRecorder(o Options) (*Recorder, error) {
	if o.Store == nil {
		return nil, ErrNoStore
	}
	o = o.withDefaults()
	return &Recorder{
		store: o.Store, now: o.Now, flushEvery: o.FlushInterval,
		org: o.OrganizationName, contact: o.ContactInfo, submitter: o.Submitter,
		log: o.log(), pending: deltas.New(func(into, from *storedDay) { into.merge(from) }),
	}, nil
}

// NewSender returns the Sender of rec's reports; o.Store must be rec's.
func NewSender(rec *Recorder, o Options) *Sender {
	o = o.withDefaults()
	return &Sender{o: o, log: o.log(), rec: rec, delays: map[string]time.Duration{}, finished: map[string]bool{}, wake: map[string]time.Time{}}
}

// withDefaults fills in the zero fields of o.
func (o Options) withDefaults() Options {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Delay == nil {
		o.Delay = func() time.Duration { return time.Minute + rand.N(59*time.Minute) }
	}
	if o.FlushInterval <= 0 {
		o.FlushInterval = DefaultFlushInterval
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = DefaultMaxAttempts
	}
	if o.RetryAfter <= 0 {
		o.RetryAfter = DefaultRetryAfter
	}
	if o.KeepDays <= 0 {
		o.KeepDays = DefaultKeepDays
	}
	// Retries run up to the day before yesterday.
	o.KeepDays = max(o.KeepDays, 3)
	if o.HTTP == nil {
		o.HTTP = &http.Client{Timeout: DefaultSendTimeout}
	}
	return o
}

func (o Options) log() *zap.Logger {
	if o.Log == nil {
		return zap.NewNop()
	}
	return o.Log
}

// Run flushes counts every FlushInterval until ctx ends, and once more
// before returning.
func (r *Recorder) Run(ctx context.Context) {
	t := time.NewTicker(r.flushEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			if err := r.Flush(); err != nil {
				r.log.Error("tlsrpt counts lost", zap.Error(err))
			}
			return
		case <-t.C:
			if err := r.Flush(); err != nil {
				r.log.Warn("tlsrpt flush failed", zap.Error(err))
			}
		}
	}
}

// Run sends the reports of past days when due, until ctx ends; with
// CountOnly it sends nothing and returns at once.
func (s *Sender) Run(ctx context.Context) {
	if !s.o.CountOnly {
		s.sendLoop(ctx)
	}
}

// Run flushes and sends until ctx ends, as Recorder.Run and Sender.Run.
func (r *Reporter) Run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Go(func() { r.Sender.Run(ctx) })
	r.Recorder.Run(ctx)
	wg.Wait()
}

// dayKey is the UTC day of t as stored.
func dayKey(t time.Time) string { return t.UTC().Format(time.DateOnly) }
