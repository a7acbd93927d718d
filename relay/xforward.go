package relay

import (
	"bytes"
	"strconv"
	"strings"
	"sync"

	"github.com/caliop/relay/internal/smtpfront"
)

// XFORWARD (Postfix XFORWARD_README): an MTA that relays through Caliop
// tells it the original client and its own queue id, so that Caliop's
// log lines join the MTA's. go-smtp knows no XFORWARD, so the rules of
// the connection's smtpfront.Conn answer it: they add the keyword to the
// EHLO/LHLO reply and take XFORWARD commands themselves, for trusted
// clients only, on the plaintext leg (after STARTTLS the Conn steps
// aside; the MTA's LMTP or SMTP to Caliop is loopback plaintext).

// xforwardKeyword is the EHLO line offered.
const xforwardKeyword = "XFORWARD NAME ADDR PROTO HELO IDENT SOURCE PORT"

// Forwarded is what the MTA said of a transaction with XFORWARD.
type Forwarded struct {
	Name, Addr, Proto, Helo string // the original client
	Ident                   string // the MTA's queue id
}

// xforwardRules are a client connection's smtpfront.Rules: XFORWARD for
// a trusted client (offer), nothing for others.
type xforwardRules struct {
	offer bool

	mu  sync.Mutex
	fwd Forwarded
}

// Command takes XFORWARD, which go-smtp would refuse as mangled.
func (r *xforwardRules) Command(c *smtpfront.Conn, _ string, line []byte) bool {
	verb, args, _ := bytes.Cut(bytes.TrimRight(line, "\r\n"), []byte(" "))
	if !r.offer || !bytes.EqualFold(verb, []byte("XFORWARD")) {
		return true
	}
	r.xforward(string(args))
	c.Say("250 2.0.0 Ok")
	return false
}

// Reply adds XFORWARD to the EHLO/LHLO reply.
func (r *xforwardRules) Reply(_ *smtpfront.Conn, verb string, lines [][]byte) ([][]byte, bool) {
	if !r.offer || verb != "EHLO" && verb != "LHLO" || !bytes.HasPrefix(lines[0], []byte("250")) {
		return lines, false
	}
	// "250-...": the keyword goes before the last line.
	last := lines[len(lines)-1]
	out := make([][]byte, 0, len(lines)+1)
	out = append(out, lines[:len(lines)-1]...)
	out = append(out, append([]byte("250-"), last[4:]...))
	return append(out, []byte("250 "+xforwardKeyword+"\r\n")), false
}

// Forwarded returns what XFORWARD said for the current transaction.
func (r *xforwardRules) Forwarded() Forwarded {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.fwd
}

// xforward records the attributes (xtext, RFC 3461 §4).
// "[UNAVAILABLE]" and "[TEMPUNAVAIL]" leave an attribute empty.
func (r *xforwardRules) xforward(args string) {
	r.mu.Lock()
	for _, kv := range strings.Fields(args) {
		k, v, _ := strings.Cut(kv, "=")
		v = unxtext(v)
		if v == "[UNAVAILABLE]" || v == "[TEMPUNAVAIL]" {
			v = ""
		}
		switch strings.ToUpper(k) {
		case "NAME":
			r.fwd.Name = v
		case "ADDR":
			r.fwd.Addr = v
		case "PROTO":
			r.fwd.Proto = v
		case "HELO":
			r.fwd.Helo = v
		case "IDENT":
			r.fwd.Ident = v
		}
	}
	r.mu.Unlock()
}

// resetForwarded forgets the attributes at the end of a transaction.
func (r *xforwardRules) resetForwarded() {
	r.mu.Lock()
	r.fwd = Forwarded{}
	r.mu.Unlock()
}

// unxtext decodes xtext; "+XX" is a byte, anything else as it is, and the
// result is kept to printable ASCII for the log.
func unxtext(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '+' && i+2 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+3], 16, 8); err == nil {
				c, i = byte(v), i+2
			}
		}
		if c >= ' ' && c < 0x7f {
			b.WriteByte(c)
		}
		if b.Len() >= 255 {
			break
		}
	}
	return b.String()
}
