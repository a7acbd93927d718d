// Package learned remembers what each destination domain's deliveries
// proved and promotes a domain that proved authenticated TLS long enough
// to a learned requirement: as a browser that once saw a site over valid
// HTTPS keeps requiring it (HSTS, RFC 6797), Caliop keeps requiring a
// certificate valid for the MX name (or a DANE match) from a domain whose
// MX hosts presented one, session after session, for days. It needs no
// one to publish anything, and stops the active attacker the default
// (TLS with any certificate) lets through.
//
// Records live in the store, so that cluster replicas share them; counts
// are added in memory and flushed every few seconds with atomic updates.
package learned

import (
	"slices"
	"strings"
	"time"

	"golang.org/x/net/publicsuffix"
)

// Requirement is what a domain learned.
type Requirement string

// The requirements.
const (
	// None: not (yet) promoted.
	None Requirement = ""
	// Verify: TLS with a certificate valid in the WebPKI for the MX name
	// (or a DANE match).
	Verify Requirement = "verify"
	// DANE: every authenticated session matched TLSA records; a session
	// without a usable TLSA answer is a violation.
	DANE Requirement = "dane"
)

// Record is what Caliop learned of one domain.
type Record struct {
	Domain string `json:"domain"`
	// MX are the MX host names that delivered authenticated.
	MX []string `json:"mx"`
	// Sessions and DANESessions count the authenticated sessions, and
	// the DANE-authenticated ones among them; Encrypted the sessions
	// that were only encrypted.
	Sessions     int `json:"sessions"`
	DANESessions int `json:"dane_sessions"`
	Encrypted    int `json:"encrypted"`
	// FirstAuth and LastAuth bound the authenticated sessions; LastEncrypted
	// is the last session that was only encrypted.
	FirstAuth     time.Time `json:"first_auth,omitzero"`
	LastAuth      time.Time `json:"last_auth,omitzero"`
	LastEncrypted time.Time `json:"last_encrypted,omitzero"`
	// Requirement and Since: the learned requirement and when it was
	// promoted; None until then.
	Requirement Requirement `json:"requirement,omitempty"`
	Since       time.Time   `json:"since,omitzero"`
}

// Rules are the thresholds of promotion and expiry.
type Rules struct {
	MinSessions int           // authenticated sessions needed; 20
	MinDays     time.Duration // spread of those sessions, and quiet time without an encrypted-only one; 7 days
	MaxAge      time.Duration // a learned requirement lapses this long after the last authenticated delivery; 60 days
}

// DefaultRules are learn's defaults.
var DefaultRules = Rules{MinSessions: 20, MinDays: 7 * 24 * time.Hour, MaxAge: 60 * 24 * time.Hour}

// Expires is when r lapses: MaxAge after the last authenticated session.
func (r *Record) Expires(rules Rules) time.Time { return r.LastAuth.Add(rules.MaxAge) }

// promote applies the rules at now and reports whether the requirement
// changed.
func (r *Record) promote(rules Rules, now time.Time) bool {
	if r.Requirement != None {
		want := Verify
		if r.DANESessions == r.Sessions {
			want = DANE
		}
		if want == r.Requirement {
			return false
		}
		r.Requirement = want // DANE seen on every session since, or no more
		return true
	}
	quiet := r.LastEncrypted.IsZero() || now.Sub(r.LastEncrypted) >= rules.MinDays
	if r.Sessions < rules.MinSessions || r.LastAuth.Sub(r.FirstAuth) < rules.MinDays || !quiet {
		return false
	}
	r.Requirement, r.Since = Verify, now
	if r.DANESessions == r.Sessions {
		r.Requirement = DANE
	}
	return true
}

// add merges what d counted into r.
func (r *Record) add(d *Record) {
	r.Sessions += d.Sessions
	r.DANESessions += d.DANESessions
	r.Encrypted += d.Encrypted
	if r.FirstAuth.IsZero() || !d.FirstAuth.IsZero() && d.FirstAuth.Before(r.FirstAuth) {
		r.FirstAuth = d.FirstAuth
	}
	r.LastAuth = later(r.LastAuth, d.LastAuth)
	r.LastEncrypted = later(r.LastEncrypted, d.LastEncrypted)
	for _, mx := range d.MX {
		if !slices.Contains(r.MX, mx) && len(r.MX) < maxMX {
			r.MX = append(r.MX, mx)
		}
	}
	slices.Sort(r.MX)
}

// maxMX bounds the MX names kept per domain.
const maxMX = 32

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// Admits reports whether host may serve r's domain: a learned MX name,
// or a host under the same registrable domain as one (mx1.mail.example
// → mx2.mail.example, or a new name under example), so that a provider
// renumbering its MX hosts is not a violation, and a host elsewhere is.
func (r *Record) Admits(host string) bool {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	if slices.Contains(r.MX, host) {
		return true
	}
	hostBase, err := publicsuffix.EffectiveTLDPlusOne(host)
	if err != nil {
		return false
	}
	for _, mx := range r.MX {
		if base, err := publicsuffix.EffectiveTLDPlusOne(mx); err == nil && base == hostBase {
			return true
		}
	}
	return false
}
