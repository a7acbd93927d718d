package tlsrpt

// The receiving side: reports other senders send about the operator's
// domains, by HTTPS POST (RFC 8460 §5.4) or by mail (§5.3).

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"strings"
	"time"
)

// DefaultPath is where Receiver.Wrap serves reports. RFC 8460 leaves the
// path to the rua URI; publish "https://<host>/tlsrpt".
const DefaultPath = "/tlsrpt"

// maxPostSize bounds a POSTed (compressed) report.
const maxPostSize = 4 << 20

// ErrForeignDomain: the report is about none of the receiver's domains.
var ErrForeignDomain = errors.New("tlsrpt: report for none of our domains")

// ReceivedSink takes the reports received, for metrics or storage. It is
// called from request goroutines: implementations are safe for concurrent
// use. The report holds only policies of the receiver's domains; its
// organization-name is whatever the sender wrote (an unbounded value).
type ReceivedSink interface {
	Received(r *Report)
}

// ReceivedFunc adapts a function to ReceivedSink.
type ReceivedFunc func(*Report)

// Received calls f.
func (f ReceivedFunc) Received(r *Report) { f(r) }

var _ ReceivedSink = ReceivedFunc(nil)

// Receiver takes reports and hands them to Sink. Its fields are set once.
type Receiver struct {
	Sink ReceivedSink
	// Domains are the policy domains reports are accepted for (lowercase
	// A-labels); policies of other domains are dropped, and a report with
	// none left is refused. Empty accepts every domain.
	Domains []string
	// Path is where Wrap serves; "" is DefaultPath.
	Path string
	// Seen remembers the reports already taken, so that one sent again
	// (senders retry) is counted once; nil: no memory.
	Seen Deduper
}

// Deduper remembers report identities. First records id, to be kept
// until keep, and reports whether it was new; an error means it could
// not tell (the report is then refused, and the sender retries).
type Deduper interface {
	First(id string, keep time.Time) (bool, error)
}

// ErrCannotDedup: the memory of reports already taken could not be read;
// the report is refused so that the sender tries again later.
var ErrCannotDedup = errors.New("tlsrpt: cannot tell whether the report was already received")

// dedupKeep is how long a report's identity is remembered past the end of
// its window (or past its arrival, when later): RFC 8460 §4.1 windows are
// a day, and senders retry for about as long.
const dedupKeep = 48 * time.Hour

// Wrap serves POSTs to r.Path and passes every other request to next (the
// MTA-STS policy host, say).
func (rc *Receiver) Wrap(next http.Handler) http.Handler {
	path := rc.Path
	if path == "" {
		path = DefaultPath
	}
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path == path {
			rc.ServeHTTP(w, req)
			return
		}
		next.ServeHTTP(w, req)
	})
}

// ServeHTTP takes one POSTed report (RFC 8460 §5.4): application/tlsrpt+gzip
// or application/tlsrpt+json; a gzipped body under another media type is
// recognised by its magic number. 200 on success, 400 for a body that is
// no report of ours, 405 for other methods, 413 when too large.
func (rc *Receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	mt, _, _ := mime.ParseMediaType(req.Header.Get("Content-Type"))
	switch mt {
	case MediaTypeGzip, MediaTypeJSON, "application/json", "application/gzip", "application/octet-stream", "":
	default:
		http.Error(w, "want "+MediaTypeGzip, http.StatusUnsupportedMediaType)
		return
	}
	body, err := io.ReadAll(io.LimitReader(req.Body, maxPostSize+1))
	if err != nil {
		http.Error(w, "reading body: "+err.Error(), http.StatusBadRequest)
		return
	}
	if len(body) > maxPostSize {
		http.Error(w, "report too large", http.StatusRequestEntityTooLarge)
		return
	}
	r, err := decode(body, 0)
	if err == nil {
		err = rc.accept(r)
	}
	switch {
	case errors.Is(err, ErrTooLarge):
		http.Error(w, err.Error(), http.StatusRequestEntityTooLarge)
	case errors.Is(err, ErrCannotDedup):
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
	case err != nil:
		http.Error(w, err.Error(), http.StatusBadRequest)
	default:
		w.WriteHeader(http.StatusOK)
	}
}

// ReceiveMail takes a report mail handed over by the MTA (see ParseMail).
func (rc *Receiver) ReceiveMail(msg io.Reader) error {
	r, err := ParseMail(msg)
	if err != nil {
		return err
	}
	return rc.accept(r)
}

// accept keeps the policies of our domains and gives the report to Sink.
func (rc *Receiver) accept(r *Report) error {
	if len(rc.Domains) > 0 {
		kept := r.Policies[:0]
		for _, p := range r.Policies {
			if slices.Contains(rc.Domains, aLabels(p.Policy.Domain)) {
				kept = append(kept, p)
			}
		}
		if len(kept) == 0 {
			return fmt.Errorf("%w: %s", ErrForeignDomain, strings.Join(domainsOf(r), ", "))
		}
		r.Policies = kept
	}
	if rc.Seen != nil && r.ReportID != "" {
		// The same report-id from the same organization is the same
		// report (RFC 8460 §4.4: report-id is unique).
		keep := time.Now()
		if r.DateRange.End.After(keep) {
			keep = r.DateRange.End
		}
		keep = keep.Add(dedupKeep)
		first, err := rc.Seen.First(r.OrganizationName+"\x00"+r.ReportID, keep)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrCannotDedup, err)
		}
		if !first {
			return nil // taken before: 200 again, counted once
		}
	}
	if rc.Sink != nil {
		rc.Sink.Received(r)
	}
	return nil
}

func domainsOf(r *Report) []string {
	var ds []string
	for _, p := range r.Policies {
		if !slices.Contains(ds, p.Policy.Domain) {
			ds = append(ds, p.Policy.Domain)
		}
	}
	return ds
}
