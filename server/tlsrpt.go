package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/caliop/relay/config"
	"github.com/caliop/relay/metrics"
	"github.com/caliop/relay/resolver"
	"github.com/caliop/relay/store"
	"github.com/caliop/relay/tlsrpt"
	"github.com/caliop/relay/tlsrpt/tlsrptsend"
)

// tlsrptOptions are the TLS-RPT recorder's and sender's options on st:
// reports are posted over HTTPS through the configured DNS servers; the
// caller adds SendMail (countedMail of tlsrptsend.Mailer). With
// tlsrpt.enabled false the sender only keeps counts.
func tlsrptOptions(cfg *config.Config, st store.Store, res *resolver.Resolver, dial resolver.DialFunc, m *metrics.Metrics, log *zap.Logger) tlsrptsend.Options {
	client := &http.Client{
		Timeout: tlsrptsend.DefaultSendTimeout,
		Transport: countedPosts{m: m, next: &http.Transport{
			Proxy:           nil,
			DialContext:     res.Dialer(dial),
			TLSClientConfig: &tls.Config{MinVersion: tls.VersionTLS12},
		}},
	}
	t := cfg.TLSRPT
	return tlsrptsend.Options{
		Store:            st,
		DNS:              res,
		HTTP:             client,
		CountOnly:        !t.Enabled,
		OrganizationName: t.OrganizationName,
		ContactInfo:      t.ContactInfo,
		Submitter:        cfg.Hostname,
		From:             t.From,
		Log:              log,
	}
}

// countedMail counts each report mailed by send.
func countedMail(send tlsrptsend.SendMail, m *metrics.Metrics) tlsrptsend.SendMail {
	return func(ctx context.Context, from, to string, msg []byte) error {
		err := send(ctx, from, to, msg)
		m.TLSRPTReport(metrics.TLSRPTMailto, err)
		return err
	}
}

// tlsrptReceiver takes the reports other senders send about the inbound
// domains: serve it on https_listen with rcv.Wrap(policyHandler) (path
// tlsrpt.DefaultPath) and publish https://<inbound hostname>/tlsrpt in
// inbound.tls_rpt.rua; report mails from the MTA go to rcv.ReceiveMail.
// Report ids are remembered in st, so that a report sent again, to this
// replica or another, is counted once.
func tlsrptReceiver(cfg *config.Config, st store.Store, sink tlsrpt.ReceivedSink) *tlsrpt.Receiver {
	return &tlsrpt.Receiver{Sink: sink, Domains: cfg.Inbound.Domains, Path: tlsrpt.DefaultPath,
		Seen: &store.Once{Store: st, Bucket: "tlsrpt-received"}}
}

// PrintTLSRPT prints, as indented JSON, domain's report of the current
// UTC day so far, as the running relay last flushed it (every few
// seconds).
func PrintTLSRPT(cfg *config.Config, domain string, out io.Writer) error {
	return printTLSRPTDay(cfg, domain, time.Now(), out)
}

// printTLSRPTDay prints domain's report of the UTC day holding day.
func printTLSRPTDay(cfg *config.Config, domain string, day time.Time, out io.Writer) error {
	st, err := openStore(cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	t := cfg.TLSRPT
	r, err := tlsrptsend.New(tlsrptsend.Options{Store: st, OrganizationName: t.OrganizationName, ContactInfo: t.ContactInfo, Submitter: cfg.Hostname})
	if err != nil {
		return err
	}
	rep, err := r.Report(domain, day)
	if err != nil {
		return fmt.Errorf("tlsrpt: %w", err)
	}
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(out, "%s\n", b)
	return err
}

// countedPosts counts the reports posted over HTTPS
// (caliop_tlsrpt_reports_total).
type countedPosts struct {
	m    *metrics.Metrics
	next http.RoundTripper
}

func (c countedPosts) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := c.next.RoundTrip(req)
	if err == nil && (resp.StatusCode < 200 || resp.StatusCode > 299) {
		c.m.TLSRPTReport(metrics.TLSRPTHTTPS, fmt.Errorf("HTTP %s", resp.Status))
	} else {
		c.m.TLSRPTReport(metrics.TLSRPTHTTPS, err)
	}
	return resp, err
}

// receivedMetrics exports what other senders reported of the inbound
// domains' TLS.
type receivedMetrics struct{ m *metrics.Metrics }

func (r receivedMetrics) Received(rep *tlsrpt.Report) {
	for _, p := range rep.Policies {
		failures := map[string]int64{}
		for _, f := range p.FailureDetails {
			failures[string(f.ResultType)] += f.FailedSessionCount
		}
		r.m.TLSRPTReceived(p.Policy.Domain, p.Summary.TotalSuccessful, failures)
	}
}

// ReceiveTLSRPTMail takes one report mail (as a Postfix pipe transport
// hands it over on standard input), parses it (RFC 8460 §5.3) and posts
// the report to the running relay's metrics listener, which exports it.
// Exit status for the pipe: 0 done, 65 not a report (bounced), 75 relay
// unreachable (Postfix retries).
func ReceiveTLSRPTMail(cfg *config.Config, in io.Reader) (int, error) {
	rep, err := tlsrpt.ParseMail(in)
	if err != nil {
		return 65, err
	}
	js, err := tlsrpt.Marshal(rep)
	if err != nil {
		return 65, err
	}
	if cfg.Metrics.Listen == "" {
		return 75, errors.New("metrics.listen is empty: nowhere to hand the report to")
	}
	url := "http://" + cfg.Metrics.Listen + tlsrpt.DefaultPath
	client := &http.Client{Timeout: 30 * time.Second}
	resp, err := client.Post(url, tlsrpt.MediaTypeGzip, bytes.NewReader(tlsrpt.Gzip(js)))
	if err != nil {
		return 75, err
	}
	resp.Body.Close()
	switch {
	case resp.StatusCode/100 == 2:
		return 0, nil
	case resp.StatusCode/100 == 4:
		return 65, fmt.Errorf("%s: %s", url, resp.Status)
	}
	return 75, fmt.Errorf("%s: %s", url, resp.Status)
}
