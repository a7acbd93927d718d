package mtasts

// The publishing side: the policy Caliop serves for its inbound domains
// (RFC 8461 §3.2, §3.3) and the DNS records that announce it (RFC 8461
// §3.1, RFC 8460 §3).

import (
	"crypto/sha256"
	"encoding/base32"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Marshal returns the policy in canonical RFC 8461 §3.2 form, each field
// on its own CRLF-terminated line:
//
//	version: STSv1
//	mode: <mode>
//	mx: <pattern>      (one line per pattern, in order)
//	max_age: <seconds>
//
// ParsePolicy(Marshal()) gives back Mode, MX and MaxAge. Text is not used.
func (p *Policy) Marshal() string {
	var b strings.Builder
	b.WriteString("version: STSv1\r\n")
	fmt.Fprintf(&b, "mode: %s\r\n", p.Mode)
	for _, mx := range p.MX {
		fmt.Fprintf(&b, "mx: %s\r\n", mx)
	}
	fmt.Fprintf(&b, "max_age: %d\r\n", int64(p.MaxAge/time.Second))
	return b.String()
}

// ID returns the sts-id for the _mta-sts TXT record (RFC 8461 §3.1:
// 1*32(ALPHA / DIGIT)): the first 160 bits of the SHA-256 of Marshal() in
// base32, 32 characters from A-Z and 2-7. It changes exactly when the
// served policy text changes, which is what tells senders to fetch the
// policy again.
func (p *Policy) ID() string {
	sum := sha256.Sum256([]byte(p.Marshal()))
	return base32.StdEncoding.EncodeToString(sum[:20])
}

// policyCacheControl lets HTTP caches keep the policy briefly: a sender
// refetches when the record's id changes, and a longer-lived cached copy
// would hand it the old policy.
const policyCacheControl = "max-age=300"

// Handler serves policy at https://mta-sts.<domain>/.well-known/mta-sts.txt
// for each of domains (RFC 8461 §3.3). The Host header, without port or
// trailing dot and compared case-insensitively, must be "mta-sts." and one
// of domains, and the path exactly the well-known one, else 404; only GET
// and HEAD are allowed (else 405). The body is policy.Marshal() with
// Content-Type text/plain (RFC 8461 §3.2). The policy is rendered once:
// later changes to policy are not served.
func Handler(domains []string, policy *Policy) http.Handler {
	hosts := make(map[string]bool, len(domains))
	for _, d := range domains {
		hosts["mta-sts."+normalizeHostHeader(d)] = true
	}
	body := policy.Marshal()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !hosts[normalizeHostHeader(r.Host)] || r.URL.Path != wellKnownPath {
			http.NotFound(w, r)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		h := w.Header()
		h.Set("Content-Type", "text/plain")
		h.Set("Content-Length", strconv.Itoa(len(body)))
		h.Set("Cache-Control", policyCacheControl)
		h.Set("X-Content-Type-Options", "nosniff")
		w.WriteHeader(http.StatusOK)
		if r.Method == http.MethodGet {
			_, _ = w.Write([]byte(body))
		}
	})
}

// normalizeHostHeader drops a port and a trailing dot and lowercases.
func normalizeHostHeader(host string) string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	return strings.ToLower(strings.TrimSuffix(host, "."))
}

// Records returns the DNS records the operator publishes for domain, as
// zone-file lines with absolute names:
//
//	_mta-sts.<domain>. TXT "v=STSv1; id=<policy.ID()>"        (RFC 8461 §3.1)
//	_smtp._tls.<domain>. TXT "v=TLSRPTv1; rua=<rua,...>"     (RFC 8460 §3, only with rua)
//	; a comment: mta-sts.<domain> must resolve to the HTTPS listener
//
// Commas and exclamation marks inside a rua URI are percent-encoded (RFC
// 8460 §3); a TXT value longer than 255 octets is split into several
// strings (RFC 1035 §3.3.14).
func Records(domain string, policy *Policy, rua []string) []string {
	d := strings.ToLower(strings.TrimSuffix(domain, "."))
	lines := []string{
		fmt.Sprintf("_mta-sts.%s. TXT %s", d, quoteTXT("v=STSv1; id="+policy.ID())),
	}
	if len(rua) > 0 {
		uris := make([]string, len(rua))
		for i, u := range rua {
			uris[i] = strings.NewReplacer(",", "%2C", "!", "%21", ";", "%3B").Replace(u)
		}
		lines = append(lines, fmt.Sprintf("_smtp._tls.%s. TXT %s", d, quoteTXT("v=TLSRPTv1; rua="+strings.Join(uris, ","))))
	}
	lines = append(lines, fmt.Sprintf("; mta-sts.%s. must resolve (A/AAAA or CNAME) to the address of Caliop's HTTPS listener (https_listen), which serves the policy", d))
	return lines
}

// quoteTXT renders a TXT value as quoted character-strings of at most 255
// octets each, escaping '"' and '\'.
func quoteTXT(v string) string {
	var parts []string
	for len(v) > 0 {
		n := min(len(v), 255)
		parts = append(parts, `"`+strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(v[:n])+`"`)
		v = v[n:]
	}
	if len(parts) == 0 {
		return `""`
	}
	return strings.Join(parts, " ")
}
