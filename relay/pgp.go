package relay

import (
	"context"
	"io"
	"time"

	openpgp "github.com/ProtonMail/go-crypto/openpgp/v2"
	"github.com/emersion/go-smtp"
	"go.uber.org/zap"

	"github.com/caliop/relay/delivery"
	"github.com/caliop/relay/internal/smtpfront"
	"github.com/caliop/relay/message"
	"github.com/caliop/relay/metrics"
	"github.com/caliop/relay/pgpmime"
	"github.com/caliop/relay/pgppolicy"
)

// Encrypter applies opportunistic PGP/MIME to keys found through WKD;
// *pgppolicy.Policy is one.
type Encrypter interface {
	// Decide is called at RCPT: the key to encrypt to (nil: plaintext),
	// or the reply refusing the recipient.
	Decide(ctx context.Context, addr string) (*openpgp.Entity, *smtp.SMTPError)
	// Encrypt writes the message encrypted to keys, or unchanged, and
	// says which.
	Encrypt(w io.Writer, m pgpmime.Message, keys []*openpgp.Entity) (pgpmime.Decision, error)
}

// decideTimeout bounds the WKD lookup at RCPT (the lookup has its own
// 5 s limit; this covers the DNS before it).
const decideTimeout = 10 * time.Second

// decide looks up the recipient's key, when encryption is on.
func (sess *session) decide(r *recipient) error {
	if sess.s.opts.PGP == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), decideTimeout)
	defer cancel()
	key, reply := sess.s.opts.PGP.Decide(ctx, r.addr.Key())
	if reply != nil {
		sess.s.noteRefused(r.domain(), metrics.FailurePolicy, 1)
		return reply
	}
	r.key = key
	return nil
}

// traced is a body behind a trace header field.
type traced struct {
	head      []byte
	body      delivery.Body
	encrypted bool
}

var _ delivery.EncryptedBody = traced{}

// Encrypted says whether the body is PGP/MIME-encrypted, for the
// delivery's protection label.
func (t traced) Encrypted() bool { return t.encrypted }

func (t traced) Reader() io.Reader { return &prefixed{head: t.head, body: t.body.Reader()} }
func (t traced) Size() int64       { return int64(len(t.head)) + t.body.Size() }

// prefixed reads head, then body. Unlike io.MultiReader's, its WriteTo
// allocates no 32 KiB buffer per message: the delivery copies bodies with
// io.Copy, which takes WriteTo first.
type prefixed struct {
	head []byte
	body io.Reader
}

func (p *prefixed) Read(b []byte) (int, error) {
	if len(p.head) > 0 {
		n := copy(b, p.head)
		p.head = p.head[n:]
		return n, nil
	}
	return p.body.Read(b)
}

func (p *prefixed) WriteTo(w io.Writer) (int64, error) {
	n, err := w.Write(p.head)
	p.head = p.head[n:]
	if err != nil {
		return int64(n), err
	}
	m, err := io.Copy(w, p.body)
	return int64(n) + m, err
}

// bodyFor returns what goes to recipients with keys (encrypted to them,
// unless the message must be left alone) or without (unchanged), with the
// trace header when encryption is on; done releases what it made.
func (sess *session) bodyFor(sp *spooled, keys []*openpgp.Entity) (body delivery.Body, eightBit bool, done func(), err error) {
	done = func() {}
	if sess.s.opts.PGP == nil {
		return sp.Spool, sp.EightBit(), done, nil
	}
	decision := pgppolicy.NoKey
	body, eightBit = sp.Spool, sp.EightBit()
	if len(keys) > 0 {
		out := message.NewSpool(sess.s.opts.SpoolDir, sess.s.opts.MemoryBuffer)
		decision, err = sess.s.opts.PGP.Encrypt(out, pgpmime.Message{Header: sp.header, Open: sp.Reader}, keys)
		if err != nil {
			out.Close()
			return nil, false, done, smtpfront.LocalError(err)
		}
		body, eightBit, done = out, out.EightBit(), func() { out.Close() }
	}
	if decision != pgppolicy.NoKey {
		sess.log.Info("pgp", zap.String("id", sess.id), zap.String("decision", string(decision)), zap.Int("keys", len(keys)))
	}
	sess.s.opts.Metrics.PGP(string(decision))
	t := traced{head: []byte(pgppolicy.TraceHeader + ": " + string(decision) + "\r\n"), body: body, encrypted: decision == pgpmime.Encrypted}
	return t, eightBit, done, nil
}
