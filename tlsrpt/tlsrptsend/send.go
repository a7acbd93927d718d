package tlsrptsend

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/caliop/relay/resolver"
	"github.com/caliop/relay/store"
	"github.com/caliop/relay/tlsrpt"
)

// The lock held while a day's reports are sent: long enough for every
// domain's attempt (parallel at a time, each bounded by SendTimeout), short
// enough that a crashed holder delays the day's reports by minutes.
const (
	sendLockPrefix = "tlsrpt-send/"
	sendLockTTL    = 30 * time.Minute
)

// checkInterval is how often the send loop looks for due reports.
const checkInterval = time.Minute

// parallel bounds the domains reported to at once.
const parallel = 8

// status is the delivery state of one domain's report of one day.
type status struct {
	// Done: nothing more to do (sent, not wanted, or given up).
	Done     bool      `json:"done"`
	Attempts int       `json:"attempts"`
	Next     time.Time `json:"next,omitzero"` // earliest next attempt
	// Delivered are the rua URIs that took the report: a retry skips
	// them.
	Delivered []string  `json:"delivered,omitempty"`
	Result    string    `json:"result,omitempty"` // last outcome, for people
	At        time.Time `json:"at"`               // of the last attempt
}

// sendLoop sends due reports every checkInterval until ctx ends.
func (r *Sender) sendLoop(ctx context.Context) {
	t := time.NewTicker(checkInterval)
	defer t.Stop()
	for {
		r.sendDue(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// sendDue sends the reports of the last two days that are due: a day's
// reports from its end plus the day's Delay, retries when their time has
// come (RFC 8460 §5.5: retried for up to a day). It also drops counts
// older than KeepDays.
func (r *Sender) sendDue(ctx context.Context) {
	r.sendMu.Lock()
	defer r.sendMu.Unlock()
	now := r.o.Now()
	today := tlsrpt.Day(now).Start
	for back := 2; back >= 1; back-- {
		start := today.AddDate(0, 0, -back)
		day := dayKey(start)
		if r.finished[day] || now.Before(today.AddDate(0, 0, 1-back).Add(r.delay(day))) || now.Before(r.wake[day]) {
			continue
		}
		r.sendDay(ctx, day, start)
	}
	r.cleanup(now)
}

// delay is day's wait after midnight, drawn once.
func (r *Sender) delay(day string) time.Duration {
	d, ok := r.delays[day]
	if !ok {
		d = r.o.Delay()
		r.delays[day] = d
	}
	return d
}

// sendDay attempts every domain of day whose report is neither done nor
// waiting for a retry.
func (r *Sender) sendDay(ctx context.Context, day string, start time.Time) {
	// Replicas sharing the store take turns: the one holding the lock
	// sends, the others find the day done when they get it.
	unlock, err := r.o.Store.Lock(sendLockPrefix+day, sendLockTTL)
	if errors.Is(err, store.ErrLocked) {
		r.log.Debug("tlsrpt reports of the day being sent by another replica", zap.String("day", day))
		return
	}
	if err != nil {
		r.log.Warn("tlsrpt send lock unavailable", zap.String("day", day), zap.Error(err))
		return
	}
	defer unlock()
	counts, err := r.rec.load(day)
	if err != nil {
		r.log.Warn("tlsrpt counts unreadable", zap.String("day", day), zap.Error(err))
		return
	}
	states, err := r.statuses(day)
	if err != nil {
		r.log.Warn("tlsrpt delivery state unreadable", zap.String("day", day), zap.Error(err))
		return
	}
	now := r.o.Now()
	var due []string
	for _, domain := range slices.Sorted(maps.Keys(counts.Domains)) {
		st := states[domain]
		if st == nil {
			st = &status{}
			states[domain] = st
		}
		if !st.Done && !now.Before(st.Next) {
			due = append(due, domain)
		}
	}
	rng := tlsrpt.Day(start)
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	for _, domain := range due {
		if ctx.Err() != nil {
			break
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			r.attempt(ctx, day, domain, r.rec.build(domain, rng, counts.Domains[domain]), states[domain])
		})
	}
	wg.Wait()
	if ctx.Err() != nil {
		return
	}
	// Nothing to do until the earliest retry.
	var wake time.Time
	for _, st := range states {
		if !st.Done && (wake.IsZero() || st.Next.Before(wake)) {
			wake = st.Next
		}
	}
	r.wake[day] = wake
	r.finished[day] = wake.IsZero()
}

// statuses reads the delivery state of every domain of day.
func (r *Sender) statuses(day string) (map[string]*status, error) {
	out := map[string]*status{}
	prefix := day + "/"
	err := r.o.Store.ForEach(sentBucket, func(key string, value []byte) error {
		domain, ok := strings.CutPrefix(key, prefix)
		if !ok {
			return nil
		}
		var st status
		if err := json.Unmarshal(value, &st); err != nil {
			return fmt.Errorf("%s: %w", key, err)
		}
		out[domain] = &st
		return nil
	})
	return out, err
}

// Sent reports whether domain's report of the day holding day needs no
// further attempt, and the last outcome.
func (r *Sender) Sent(domain string, day time.Time) (bool, string, error) {
	var st status
	_, err := r.o.Store.Get(sentBucket, dayKey(day)+"/"+domain, &st)
	return st.Done, st.Result, err
}

// attempt sends one domain's report to every rua of its record not yet
// served, and keeps the new state.
func (r *Sender) attempt(ctx context.Context, day, domain string, rep *tlsrpt.Report, st *status) {
	log := r.log.With(zap.String("domain", domain), zap.String("day", day))
	now := r.o.Now()
	st.At = now
	st.Attempts++
	rec, err := r.lookup(ctx, domain)
	switch {
	case errors.Is(err, resolver.ErrNXDomain), errors.Is(err, tlsrpt.ErrNoRecord), errors.Is(err, tlsrpt.ErrMultipleRecords), errors.Is(err, tlsrpt.ErrBadRecord):
		// RFC 8460 §3: the domain does not take reports.
		st.Done, st.Result = true, "not wanted: "+err.Error()
		log.Debug("tlsrpt report not wanted", zap.Error(err))
	case err != nil:
		r.failed(st, now, err, log)
	default:
		err = r.deliverAll(ctx, rec, domain, rep, st, log)
		if err == nil {
			st.Done, st.Result = true, "sent to "+strings.Join(st.Delivered, ", ")
		} else {
			r.failed(st, now, err, log)
		}
	}
	if ctx.Err() != nil && !st.Done {
		// Shutting down: this attempt does not count.
		st.Attempts--
		st.Next = time.Time{}
	}
	if err := r.o.Store.Put(sentBucket, day+"/"+domain, st); err != nil {
		log.Warn("tlsrpt delivery state not kept", zap.Error(err))
	}
}

// lookup finds domain's TLS-RPT record (RFC 8460 §3).
func (r *Sender) lookup(ctx context.Context, domain string) (tlsrpt.TXTRecord, error) {
	if r.o.DNS == nil {
		return tlsrpt.TXTRecord{}, errors.New("no DNS resolver configured")
	}
	txts, _, err := r.o.DNS.LookupTXT(ctx, tlsrpt.RecordName(domain))
	if err != nil {
		return tlsrpt.TXTRecord{}, err
	}
	return tlsrpt.SelectTXT(txts)
}

// deliverAll sends the report to each rua not yet served; it returns the
// failures.
func (r *Sender) deliverAll(ctx context.Context, rec tlsrpt.TXTRecord, domain string, rep *tlsrpt.Report, st *status, log *zap.Logger) error {
	js, err := tlsrpt.Marshal(rep)
	if err != nil {
		return err
	}
	gz := tlsrpt.Gzip(js)
	var errs []error
	for _, u := range rec.RUA {
		uri := u.String()
		if slices.Contains(st.Delivered, uri) {
			continue
		}
		if err := r.deliver(ctx, u, domain, rep, gz); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", uri, err))
			log.Warn("tlsrpt report not delivered", zap.String("rua", uri), zap.Error(err))
			continue
		}
		st.Delivered = append(st.Delivered, uri)
		log.Info("tlsrpt report delivered", zap.String("rua", uri), zap.Int("bytes", len(gz)))
	}
	return errors.Join(errs...)
}

// failed schedules the next attempt, or gives up after MaxAttempts.
func (r *Sender) failed(st *status, now time.Time, err error, log *zap.Logger) {
	if st.Attempts >= r.o.MaxAttempts {
		st.Done, st.Result = true, fmt.Sprintf("gave up after %d attempts: %v", st.Attempts, err)
		log.Warn("tlsrpt report given up", zap.Int("attempts", st.Attempts), zap.Error(err))
		return
	}
	wait := r.o.RetryAfter
	for range st.Attempts - 1 {
		wait *= 3
	}
	st.Next, st.Result = now.Add(wait), "will retry: "+err.Error()
}

// cleanup drops counts and states older than KeepDays, once a day.
func (r *Sender) cleanup(now time.Time) {
	limit := dayKey(now.AddDate(0, 0, -r.o.KeepDays))
	if r.cleaned == limit {
		return
	}
	for _, b := range []string{countsBucket, sentBucket} {
		var old []string
		err := r.o.Store.ForEach(b, func(key string, _ []byte) error {
			if key < limit {
				old = append(old, key)
			}
			return nil
		})
		for _, k := range old {
			if err == nil {
				err = r.o.Store.Delete(b, k)
			}
		}
		if err != nil {
			r.log.Warn("tlsrpt cleanup failed", zap.Error(err))
			return
		}
	}
	r.cleaned = limit
	for day := range r.finished {
		if day < limit {
			delete(r.finished, day)
			delete(r.delays, day)
			delete(r.wake, day)
		}
	}
}
