package tlsrptsend

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/caliop/relay/tlsrpt"
)

// storedDay is the value of one day in countsBucket.
type storedDay struct {
	Domains map[string]*storedDomain `json:"domains"`
}

// storedDomain is one policy domain's day.
type storedDomain struct {
	Policies map[string]*storedPolicy `json:"policies"` // by policyKey
}

// storedPolicy counts the sessions under one policy (RFC 8460 §4.4
// "policies" entry).
type storedPolicy struct {
	Type tlsrpt.PolicyType `json:"type"`
	Text string            `json:"text,omitempty"` // Outcome.PolicyText
	// MX is the MX host a "tlsa" policy is for: each host has its own
	// TLSA records, so its own policy.
	MX       string                    `json:"mx,omitempty"`
	Success  int64                     `json:"success"`
	Failures map[string]*storedFailure `json:"failures,omitempty"` // by failureKey
}

// storedFailure is one group of alike failures: same result type, MX,
// addresses and greeting.
type storedFailure struct {
	Result      tlsrpt.ResultType `json:"result"`
	MX          string            `json:"mx,omitempty"`
	ReceivingIP string            `json:"ip,omitempty"`
	SendingIP   string            `json:"sending_ip,omitempty"`
	HELO        string            `json:"helo,omitempty"`
	Count       int64             `json:"count"`
	// Reason is the Detail of the first failure of the group.
	Reason string `json:"reason,omitempty"`
}

// maxReason bounds the failure-reason-code taken from an outcome's Detail.
const maxReason = 200

// sep joins key parts; it occurs in no host name, address or policy line.
const sep = "\x1f"

// Record counts o under the current UTC day. Outcomes without a domain
// are ignored.
func (r *Recorder) Record(o tlsrpt.Outcome) {
	domain := strings.ToLower(strings.TrimSuffix(o.Domain, "."))
	if domain == "" {
		return
	}
	r.pending.Update(dayKey(r.now()), func(d *storedDay) { d.add(domain, o) })
}

// add counts o for domain.
func (d *storedDay) add(domain string, o tlsrpt.Outcome) {
	if d.Domains == nil {
		d.Domains = map[string]*storedDomain{}
	}
	sd := d.Domains[domain]
	if sd == nil {
		sd = &storedDomain{Policies: map[string]*storedPolicy{}}
		d.Domains[domain] = sd
	}
	p := storedPolicy{Type: o.Policy, Text: o.PolicyText}
	if p.Type == "" {
		p.Type = tlsrpt.PolicyNone
	}
	if p.Type == tlsrpt.PolicyTLSA {
		p.MX = strings.ToLower(o.MX)
	}
	sp := sd.policy(p)
	if o.Success {
		sp.Success++
		return
	}
	f := storedFailure{Result: o.Result, MX: strings.ToLower(o.MX), ReceivingIP: o.ReceivingIP, SendingIP: o.SendingIP, HELO: o.ReceivingHELO}
	if f.Result == "" {
		f.Result = tlsrpt.ValidationFailure
	}
	sf := sp.failure(f)
	if sf.Reason == "" && o.Detail != "" {
		sf.Reason = truncate(o.Detail, maxReason)
	}
	sf.Count++
}

// policy returns the entry for p's policy, made if needed.
func (sd *storedDomain) policy(p storedPolicy) *storedPolicy {
	k := string(p.Type) + sep + p.Text + sep + p.MX
	sp := sd.Policies[k]
	if sp == nil {
		sp = &storedPolicy{Type: p.Type, Text: p.Text, MX: p.MX}
		sd.Policies[k] = sp
	}
	return sp
}

// failure returns the group of f, made if needed.
func (sp *storedPolicy) failure(f storedFailure) *storedFailure {
	k := strings.Join([]string{string(f.Result), f.MX, f.ReceivingIP, f.SendingIP, f.HELO}, sep)
	if sp.Failures == nil {
		sp.Failures = map[string]*storedFailure{}
	}
	sf := sp.Failures[k]
	if sf == nil {
		sf = &storedFailure{Result: f.Result, MX: f.MX, ReceivingIP: f.ReceivingIP, SendingIP: f.SendingIP, HELO: f.HELO}
		sp.Failures[k] = sf
	}
	return sf
}

// merge adds src's counts to d.
func (d *storedDay) merge(src *storedDay) {
	if d.Domains == nil {
		d.Domains = map[string]*storedDomain{}
	}
	for domain, s := range src.Domains {
		sd := d.Domains[domain]
		if sd == nil {
			sd = &storedDomain{Policies: map[string]*storedPolicy{}}
			d.Domains[domain] = sd
		}
		for _, p := range s.Policies {
			sp := sd.policy(*p)
			sp.Success += p.Success
			for _, f := range p.Failures {
				sf := sp.failure(*f)
				if sf.Reason == "" {
					sf.Reason = f.Reason
				}
				sf.Count += f.Count
			}
		}
	}
}

// Flush adds the counts not yet written to the store, one atomic update
// per day. On error a day's counts go back to memory for the next flush.
func (r *Recorder) Flush() error {
	r.flushMu.Lock()
	defer r.flushMu.Unlock()
	if err := r.pending.Flush(r.flushDay); err != nil {
		return fmt.Errorf("tlsrpt counts of %w", err)
	}
	return nil
}

// flushDay adds delta to the day's stored counts.
func (r *Recorder) flushDay(day string, delta *storedDay) error {
	return r.store.Update(countsBucket, day, func(old []byte) ([]byte, error) {
		var stored storedDay
		if old != nil {
			if err := json.Unmarshal(old, &stored); err != nil {
				return nil, fmt.Errorf("stored counts: %w", err)
			}
		}
		stored.merge(delta)
		return json.Marshal(&stored)
	})
}

// load returns the stored counts of day, after a flush.
func (r *Recorder) load(day string) (*storedDay, error) {
	if err := r.Flush(); err != nil {
		return nil, err
	}
	var d storedDay
	if _, err := r.store.Get(countsBucket, day, &d); err != nil {
		return nil, err
	}
	return &d, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xc0 == 0x80 { // not inside a UTF-8 sequence
		n--
	}
	return s[:n]
}
