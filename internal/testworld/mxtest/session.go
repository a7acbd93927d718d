package mxtest

import (
	"bytes"
	"errors"
	"io"
	"time"

	"github.com/emersion/go-smtp"
)

// errDropped ends DATA when Behavior.DropInData closed the connection.
var errDropped = errors.New("mxtest: connection dropped in DATA")

// errStopping ends a delayed DATA when the server stops first.
var errStopping = &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 3, 2}, Message: "Server stopping"}

type backend struct{ s *Server }

var _ smtp.Backend = backend{}

// NewSession is called by go-smtp at the first EHLO/HELO of a connection.
func (b backend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	if r := b.s.behavior.GreetReply; r != nil {
		return nil, r
	}
	wc, _ := c.Conn().(*conn)
	return &session{s: b.s, c: wc}, nil
}

type session struct {
	s *Server
	c *conn // nil only if go-smtp stops handing us our own conn

	from string
	opts smtp.MailOptions
	to   []string
}

var _ smtp.Session = (*session)(nil)

func (ss *session) Mail(from string, opts *smtp.MailOptions) error {
	ss.from, ss.to = from, nil
	ss.opts = smtp.MailOptions{}
	if opts != nil {
		ss.opts = *opts
	}
	if r := ss.s.behavior.MailReply; r != nil {
		return r
	}
	return nil
}

func (ss *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if r := ss.s.behavior.RcptReply[to]; r != nil {
		return r
	}
	ss.to = append(ss.to, to)
	return nil
}

func (ss *session) Data(r io.Reader) error {
	b := ss.s.behavior
	if b.DropInData {
		readLine(r)
		if ss.c != nil {
			ss.c.Close()
		}
		return errDropped
	}
	data, err := io.ReadAll(r)
	if err != nil {
		return err // go-smtp's ErrDataTooLarge gives 552
	}
	if b.DataReply != nil {
		return b.DataReply
	}
	if b.Delay > 0 {
		select {
		case <-time.After(b.Delay):
		case <-ss.s.done:
			return errStopping
		}
	}
	m := Message{
		From:     ss.from,
		To:       append([]string(nil), ss.to...),
		Data:     data,
		MailOpts: ss.opts,
	}
	if ss.c != nil {
		if st := ss.c.tlsState(); st != nil {
			m.TLS, m.TLSVersion, m.ServerName = true, st.Version, st.ServerName
		}
	}
	ss.s.store(m)
	return nil
}

// readLine reads the body up to its first line feed (or 4 KiB).
func readLine(r io.Reader) {
	buf := make([]byte, 1)
	for n := 0; n < 4096; n++ {
		if _, err := io.ReadFull(r, buf); err != nil || bytes.Equal(buf, []byte("\n")) {
			return
		}
	}
}

func (ss *session) Reset() {
	ss.from, ss.to, ss.opts = "", nil, smtp.MailOptions{}
}

func (ss *session) Logout() error { return nil }
