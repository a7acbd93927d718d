package server

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"go.uber.org/zap"

	"github.com/caliop/relay/check"
	"github.com/caliop/relay/config"
	"github.com/caliop/relay/learned"
	"github.com/caliop/relay/store"
)

// newLearner makes the learner of cfg.Learn on st, nil with learn.mode
// off.
func newLearner(cfg *config.Config, st store.Store, log *zap.Logger) *learned.Learner {
	l := cfg.Learn
	if l.Mode == "off" {
		return nil
	}
	return learned.New(learned.Config{Store: st, Rules: learnRules(cfg), Exclude: l.Exclude, Log: log})
}

// LearnedList prints every record of the store: the domains with a
// learned policy and those being learned (`caliop learned list`).
func LearnedList(cfg *config.Config, asJSON bool, out io.Writer) error {
	st, closeStore, err := openStoreToLook(cfg)
	if err != nil {
		return err
	}
	defer closeStore()
	rs, err := learned.List(st)
	if err != nil {
		return err
	}
	if asJSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		if rs == nil {
			rs = []learned.Record{}
		}
		return enc.Encode(rs)
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DOMAIN\tREQUIRES\tSINCE\tSESSIONS\tDANE\tENCRYPTED ONLY\tLAST AUTHENTICATED\tMX")
	for _, r := range rs {
		req, since := string(r.Requirement), ""
		if req == "" {
			req = "(learning)"
		} else {
			since = r.Since.Format(time.DateOnly)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%s\t%s\n", r.Domain, req, since, r.Sessions, r.DANESessions, r.Encrypted,
			r.LastAuth.Format(time.DateOnly), strings.Join(r.MX, ","))
	}
	return tw.Flush()
}

// LearnedShow prints domain's record and what it requires under the
// configured mode; found is false when nothing was learned.
func LearnedShow(cfg *config.Config, domain string, out io.Writer) (found bool, err error) {
	st, closeStore, err := openStoreToLook(cfg)
	if err != nil {
		return false, err
	}
	defer closeStore()
	var r learned.Record
	found, err = st.Get(learned.Bucket, strings.ToLower(strings.TrimSuffix(domain, ".")), &r)
	if err != nil || !found {
		if err == nil {
			fmt.Fprintf(out, "%s: nothing learned\n", domain)
		}
		return found, err
	}
	fmt.Fprint(out, describeLearned(cfg, r, time.Now()))
	return true, nil
}

// describeLearned is what `caliop learned show` and `caliop check` print
// of a record.
func describeLearned(cfg *config.Config, r learned.Record, now time.Time) string {
	var b strings.Builder
	fmt.Fprintf(&b, "domain:             %s\n", r.Domain)
	fmt.Fprintf(&b, "sessions:           %d authenticated (%d by DANE), %d encrypted only\n", r.Sessions, r.DANESessions, r.Encrypted)
	fmt.Fprintf(&b, "authenticated:      %s to %s\n", r.FirstAuth.Format(time.DateOnly), r.LastAuth.Format(time.DateOnly))
	fmt.Fprintf(&b, "mx learned:         %s\n", strings.Join(r.MX, ", "))
	rules := learnRules(cfg)
	switch {
	case r.Requirement == learned.None:
		fmt.Fprintf(&b, "requires:           nothing yet (promotion at %d sessions over %d days, none encrypted-only for %d days)\n",
			cfg.Learn.MinSessions, cfg.Learn.MinDays, cfg.Learn.MinDays)
	default:
		what := "a certificate valid for the MX name (WebPKI) or a DANE match"
		if r.Requirement == learned.DANE {
			what = "a DANE match (usable TLSA records)"
		}
		fmt.Fprintf(&b, "requires:           %s, from MX hosts under the names learned\n", what)
		fmt.Fprintf(&b, "since:              %s (%d days); lapses %s without an authenticated delivery\n",
			r.Since.Format(time.DateOnly), int(now.Sub(r.Since).Hours()/24), r.Expires(rules).Format(time.DateOnly))
		fmt.Fprintf(&b, "mode:               %s\n", cfg.Learn.Mode)
	}
	return b.String()
}

// storeLearned looks learned requirements up in the store directly, for
// a command (caliop check) that runs no learner.
type storeLearned struct {
	st    store.Store
	rules learned.Rules
}

func (s storeLearned) Lookup(domain string) (learned.Record, bool) {
	var r learned.Record
	found, err := s.st.Get(learned.Bucket, strings.ToLower(strings.TrimSuffix(domain, ".")), &r)
	if err != nil || !found || r.Requirement == learned.None || !time.Now().Before(r.Expires(s.rules)) {
		return learned.Record{}, false
	}
	return r, true
}

// addLearned puts what was learned of r's domain in r, with what it
// requires under the configured mode.
func addLearned(cfg *config.Config, st store.Store, r *check.Report) {
	var rec learned.Record
	if found, err := st.Get(learned.Bucket, strings.ToLower(strings.TrimSuffix(r.Domain, ".")), &rec); err != nil || !found {
		return
	}
	r.Learned = &rec
	switch {
	case rec.Requirement == learned.None:
		r.Requires = "nothing yet: still learning"
	case cfg.Learn.Mode == "enforce":
		r.Requires = fmt.Sprintf("enforced: %s from MX hosts under %s, since %s", rec.Requirement, strings.Join(rec.MX, ", "), rec.Since.Format(time.DateOnly))
	case cfg.Learn.Mode == "report":
		r.Requires = fmt.Sprintf("reported only (learn.mode report): enforce would require %s from MX hosts under %s", rec.Requirement, strings.Join(rec.MX, ", "))
	default:
		r.Requires = "nothing: learn.mode off"
	}
}

// LearnedForget deletes domain's record (`caliop learned forget`).
func LearnedForget(cfg *config.Config, domain string, out io.Writer) error {
	st, err := openStore(cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	if err := learned.Forget(st, domain); err != nil {
		return err
	}
	fmt.Fprintf(out, "%s: forgotten; a running relay drops its learned policy within a minute\n", domain)
	return nil
}

func learnRules(cfg *config.Config) learned.Rules {
	l := cfg.Learn
	return learned.Rules{MinSessions: l.MinSessions, MinDays: time.Duration(l.MinDays) * 24 * time.Hour, MaxAge: time.Duration(l.MaxAge)}
}
