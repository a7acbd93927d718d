package wkd

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"

	openpgp "github.com/ProtonMail/go-crypto/openpgp/v2"
)

// MaxResponseSize is the largest directory answer read; a larger one is
// ErrUnknown. A few keys with their signatures fit many times over.
const MaxResponseSize = 256 << 10

// LookupTimeout bounds a whole lookup: the DNS question, connecting,
// redirects and reading the body.
const LookupTimeout = 5 * time.Second

// maxRedirects is how many redirects a lookup follows, all to https.
const maxRedirects = 3

// userAgent is sent with every request.
const userAgent = "caliop-wkd"

// Lookup is the outcome of one WKD lookup.
type Lookup struct {
	Method      string          // "advanced" or "direct" (draft §3.1); "" if it could not be chosen
	URL         string          // the URL asked first (before redirects)
	Key         *openpgp.Entity // the chosen key; nil with an error
	Fingerprint string          // of Key, uppercase hex
	Rejected    []string        // why the other keys of the answer were not taken, one line each
}

// Client looks up keys in Web Key Directories. Its fields are read-only
// once Lookup is called; Lookup is safe for concurrent use.
type Client struct {
	// DialContext opens TCP connections to "host:443" and must resolve
	// host itself through Caliop's DNS servers (resolver.Resolver.Dialer).
	// Required.
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)
	// HasAddress reports whether host has an A or AAAA record: (true,
	// nil) yes, (false, nil) NXDOMAIN or NODATA, (false, err) the DNS
	// failed. It decides between the advanced and the direct method.
	// Required.
	HasAddress func(ctx context.Context, host string) (bool, error)
	// Roots verifies the directory's certificate; nil means the system
	// roots.
	Roots *x509.CertPool
	// Now is the time at which keys must be valid; nil means time.Now.
	Now func() time.Time

	httpOnce sync.Once
	http     *http.Client // built at the first fetch (client)
}

// Lookup finds the key of address ("local@domain") in its domain's Web
// Key Directory (draft §3.1) and selects the usable one (Select).
//
// The advanced method comes first: when openpgpkey.<domain> has an
// address, only the advanced URL is asked, and neither its failure nor
// its 404 leads to the direct method; the direct method is used only when
// openpgpkey.<domain> has no address (draft §3.1: only if the required
// sub-domain does not exist), and then only if <domain> has one (else
// ErrNoKey with ErrNoDirectory: there is no directory to ask). A DNS failure is ErrUnknown
// and no request is made.
//
// Only HTTPS is spoken, with the certificate verified for the URL's host
// (a host's connection and TLS session are kept for its next lookup);
// at most 3 redirects are followed, each to an https URL on port 443,
// without a Referer (the local part is sent only in the l= parameter of
// the URL). A 200 answer is parsed as keys, a 404 is ErrNoKey, any other
// status ErrUnknown. The whole lookup takes at most LookupTimeout and
// reads at most MaxResponseSize bytes of body.
//
// The error wraps ErrNoKey or ErrUnknown. The Lookup says what was asked
// even with an error, and Rejected is set when the keys were unusable.
func (c *Client) Lookup(ctx context.Context, address string) (Lookup, error) {
	local, domain, err := splitAddress(address)
	if err != nil {
		return Lookup{}, fmt.Errorf("%w: %w", ErrNoKey, err)
	}
	if c.DialContext == nil || c.HasAddress == nil {
		return Lookup{}, fmt.Errorf("%w: Client.DialContext and Client.HasAddress are required", ErrUnknown)
	}
	ctx, cancel := context.WithTimeout(ctx, LookupTimeout)
	defer cancel()
	l, err := c.method(ctx, local, domain)
	if err != nil {
		return l, err
	}
	body, err := c.fetch(ctx, l.URL)
	if err != nil {
		return l, err
	}
	now := time.Now
	if c.Now != nil {
		now = c.Now
	}
	key, rejected, err := Select(body, address, now())
	l.Rejected = rejected
	if err != nil {
		return l, fmt.Errorf("%s %s method: %w", domain, l.Method, err)
	}
	l.Key, l.Fingerprint = key, fingerprint(key)
	return l, nil
}

// method chooses between the advanced and the direct method (draft
// §3.1) by whether openpgpkey.<domain> has an address.
func (c *Client) method(ctx context.Context, local, domain string) (Lookup, error) {
	sub := "openpgpkey." + domain
	has, err := c.HasAddress(ctx, sub)
	if err != nil {
		return Lookup{}, fmt.Errorf("%w: %s: address lookup: %w", ErrUnknown, sub, err)
	}
	if has {
		return Lookup{Method: "advanced", URL: AdvancedURL(local, domain)}, nil
	}
	l := Lookup{Method: "direct", URL: DirectURL(local, domain)}
	has, err = c.HasAddress(ctx, domain)
	if err != nil {
		return l, fmt.Errorf("%w: %s: address lookup: %w", ErrUnknown, domain, err)
	}
	if !has {
		return l, fmt.Errorf("%w: neither %s nor %s has an address: %w", ErrNoKey, sub, domain, ErrNoDirectory)
	}
	return l, nil
}

// fetch GETs rawURL and returns the body of a 200 answer.
func (c *Client) fetch(ctx context.Context, rawURL string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnknown, err)
	}
	req.Header.Set("User-Agent", userAgent)
	host := req.URL.Host
	resp, err := c.client().Do(req)
	if err != nil {
		return nil, transportError(ctx, host, err)
	}
	defer resp.Body.Close()
	host = resp.Request.URL.Host // after redirects
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotFound:
		return nil, fmt.Errorf("%w: %s: HTTP %s", ErrNoKey, host, resp.Status)
	default:
		return nil, fmt.Errorf("%w: %s: HTTP %s", ErrUnknown, host, resp.Status)
	}
	if resp.ContentLength > MaxResponseSize {
		return nil, fmt.Errorf("%w: %s: answer of %d bytes, over %d", ErrUnknown, host, resp.ContentLength, MaxResponseSize)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponseSize+1))
	if err != nil {
		return nil, transportError(ctx, host, err)
	}
	if len(body) > MaxResponseSize {
		return nil, fmt.Errorf("%w: %s: answer over %d bytes", ErrUnknown, host, MaxResponseSize)
	}
	return body, nil
}

// Connection reuse between lookups: a directory host's connection is
// kept a while for the next address there (a domain's users are looked
// up one after another), and its TLS session resumed after that, so that
// a lookup seldom pays a full handshake and certificate check.
const (
	idleConnTimeout = 30 * time.Second
	maxIdleConns    = 64
	tlsSessions     = 1024
)

// client is c's HTTP client, built once: the caller's dialer, no proxy,
// no cookies, TLS 1.2 or later verified for each URL's host, sessions
// resumed, one idle connection per host for idleConnTimeout, redirects
// checked by checkRedirect.
func (c *Client) client() *http.Client {
	c.httpOnce.Do(func() {
		transport := &http.Transport{
			Proxy:       nil,
			DialContext: c.DialContext,
			TLSClientConfig: &tls.Config{
				RootCAs:            c.Roots,
				MinVersion:         tls.VersionTLS12,
				ClientSessionCache: tls.NewLRUClientSessionCache(tlsSessions),
			},
			MaxIdleConns:           maxIdleConns,
			MaxIdleConnsPerHost:    1,
			IdleConnTimeout:        idleConnTimeout,
			DisableCompression:     true,
			MaxResponseHeaderBytes: 64 << 10,
		}
		c.http = &http.Client{Transport: transport, CheckRedirect: checkRedirect}
	})
	return c.http
}

// checkRedirect follows at most maxRedirects redirects, only to https on
// the default port (DialContext is only ever given "host:443"), and
// drops the Referer header, which would carry the local part to the
// redirect's target.
func checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) > maxRedirects {
		return fmt.Errorf("more than %d redirects", maxRedirects)
	}
	if req.URL.Scheme != "https" {
		return fmt.Errorf("redirect to %s://%s: only https is followed", req.URL.Scheme, req.URL.Host)
	}
	if p := req.URL.Port(); p != "" && p != "443" {
		return fmt.Errorf("redirect to https://%s: only port 443 is followed", req.URL.Host)
	}
	req.Header.Del("Referer")
	return nil
}

// transportError wraps an error of the connection, TLS handshake, HTTP
// exchange or redirect policy as ErrUnknown, without the URL (and so
// without the local part) that net/http puts in front.
func transportError(ctx context.Context, host string, err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("%w: %s: timed out: %w", ErrUnknown, host, err)
	}
	return fmt.Errorf("%w: %s: %w", ErrUnknown, host, err)
}
