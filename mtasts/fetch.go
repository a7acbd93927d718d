package mtasts

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// MaxPolicySize is the largest policy body accepted (RFC 8461 §3.3
// suggests 64 kilobytes).
const MaxPolicySize = 64 << 10

// FetchTimeout bounds a whole policy fetch, from connecting to reading the
// body (RFC 8461 §3.3: a suggested timeout is one minute).
const FetchTimeout = time.Minute

// userAgent is sent with every policy request.
const userAgent = "caliop-mta-sts"

// wellKnownPath is where the policy is served (RFC 8461 §3.3).
const wellKnownPath = "/.well-known/mta-sts.txt"

// Fetch errors (RFC 8461 §3.3). Either way the domain has no new policy
// now; a policy cached earlier still applies until it expires.
var (
	// ErrFetch: the policy could not be fetched (DNS, connection, HTTP
	// status, content type, size, timeout). RFC 8460 result type
	// "sts-policy-fetch-error". Retry later; a cached policy still applies.
	ErrFetch = errors.New("mta-sts policy fetch failed")
	// ErrWebPKI: the policy host's certificate is not valid for
	// mta-sts.<domain> (RFC 8461 §3.3). RFC 8460 result type
	// "sts-webpki-invalid". A cached policy still applies.
	ErrWebPKI = errors.New("mta-sts policy host certificate invalid")
)

// Fetcher fetches policies over HTTPS (RFC 8461 §3.3). Its fields are
// read-only once Fetch is called; Fetch is safe for concurrent use.
type Fetcher struct {
	// DialContext opens TCP connections; it is given
	// "mta-sts.<domain>:443" and must resolve the name itself (the caller
	// resolves through its own DNS servers). Required.
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)
	// Roots verifies the policy host's certificate; nil means the system
	// roots (SSL_CERT_FILE honoured).
	Roots *x509.CertPool
}

// Fetch fetches and parses the policy of domain from
// https://mta-sts.<domain>/.well-known/mta-sts.txt (RFC 8461 §3.3): the
// certificate must be valid for mta-sts.<domain> (else ErrWebPKI),
// redirects are not followed, only a 200 response with media type
// text/plain and at most MaxPolicySize bytes is taken (else ErrFetch), and
// the body must parse (else ErrPolicyInvalid). The fetch takes at most
// FetchTimeout. domain may have a trailing dot and U-labels.
func (f *Fetcher) Fetch(ctx context.Context, domain string) (*Policy, error) {
	d, err := toASCII(strings.TrimSuffix(domain, "."))
	if err != nil {
		return nil, fmt.Errorf("%w: policy domain: %v", ErrFetch, err)
	}
	host := "mta-sts." + d
	if f.DialContext == nil {
		return nil, fmt.Errorf("%w: %s: Fetcher.DialContext is nil", ErrFetch, host)
	}
	ctx, cancel := context.WithTimeout(ctx, FetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+host+wellKnownPath, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrFetch, host, err)
	}
	req.Header.Set("User-Agent", userAgent)

	client, transport := f.client(host)
	defer transport.CloseIdleConnections()
	resp, err := client.Do(req)
	if err != nil {
		return nil, transportError(host, err)
	}
	defer resp.Body.Close()
	if err := checkResponse(host, resp); err != nil {
		return nil, err
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxPolicySize+1))
	if err != nil {
		return nil, transportError(host, err)
	}
	if len(body) > MaxPolicySize {
		return nil, fmt.Errorf("%w: %s: policy larger than %d bytes", ErrFetch, host, MaxPolicySize)
	}
	p, err := parsePolicy(body)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrPolicyInvalid, host, err)
	}
	return p, nil
}

// client builds a client for one fetch: the caller's dialer, no proxy, no
// connection reuse, no redirects, TLS 1.2 or later with SNI and
// verification for host.
func (f *Fetcher) client(host string) (*http.Client, *http.Transport) {
	transport := &http.Transport{
		Proxy:       nil,
		DialContext: f.DialContext,
		TLSClientConfig: &tls.Config{
			ServerName: host,
			RootCAs:    f.Roots,
			MinVersion: tls.VersionTLS12,
		},
		DisableKeepAlives:      true,
		DisableCompression:     true,
		MaxResponseHeaderBytes: MaxPolicySize,
	}
	client := &http.Client{
		Transport: transport,
		// RFC 8461 §3.3: "HTTP 3xx redirects MUST NOT be followed".
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return client, transport
}

// checkResponse accepts only 200 (RFC 8461 §3.3) with media type
// text/plain (RFC 8461 §3.2).
func checkResponse(host string, resp *http.Response) error {
	switch {
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		return fmt.Errorf("%w: %s: HTTP %s to %q, redirects are not followed (RFC 8461 §3.3)",
			ErrFetch, host, resp.Status, resp.Header.Get("Location"))
	case resp.StatusCode != http.StatusOK:
		return fmt.Errorf("%w: %s: HTTP %s", ErrFetch, host, resp.Status)
	}
	ct := resp.Header.Get("Content-Type")
	if ct == "" {
		return fmt.Errorf("%w: %s: no Content-Type, want text/plain", ErrFetch, host)
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil && !errors.Is(err, mime.ErrInvalidMediaParameter) {
		return fmt.Errorf("%w: %s: Content-Type %q: %w", ErrFetch, host, ct, err)
	}
	if mt != "text/plain" {
		return fmt.Errorf("%w: %s: Content-Type %q, want text/plain", ErrFetch, host, ct)
	}
	return nil
}

// transportError classes an error of the connection, TLS handshake or
// HTTP exchange: certificate verification failures are ErrWebPKI,
// everything else ErrFetch.
func transportError(host string, err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err // drop the repeated "Get <url>:"
	}
	if isCertError(err) {
		return fmt.Errorf("%w: %s: %w", ErrWebPKI, host, err)
	}
	return fmt.Errorf("%w: %s: %w", ErrFetch, host, err)
}

func isCertError(err error) bool {
	var (
		verify    *tls.CertificateVerificationError
		hostname  x509.HostnameError
		authority x509.UnknownAuthorityError
		invalid   x509.CertificateInvalidError
		roots     x509.SystemRootsError
		algorithm x509.InsecureAlgorithmError
		violation x509.ConstraintViolationError
	)
	return errors.As(err, &verify) || errors.As(err, &hostname) ||
		errors.As(err, &authority) || errors.As(err, &invalid) ||
		errors.As(err, &roots) || errors.As(err, &algorithm) ||
		errors.As(err, &violation)
}
