package delivery

import (
	"errors"
	"fmt"
	"strings"

	"github.com/emersion/go-smtp"

	"github.com/caliop/relay/metrics"
	"github.com/caliop/relay/tlsrpt"
)

// failKind orders why an MX did not take a message.
type failKind int

const (
	failDNS     failKind = iota // the MX host's addresses could not be found
	failNetwork                 // connect, timeout, connection lost
	failServer                  // the server answered 4xx before any recipient
	failPolicy                  // a TLS requirement of the plan was not met
	failMessage                 // the server cannot take this message (5.6.x, 5.3.4)
	failFinal                   // the server gave a permanent reply to MAIL
)

// failure is one address (or MX) that did not take the message.
type failure struct {
	host, addr string
	kind       failKind
	result     tlsrpt.ResultType // for failPolicy
	err        error
	final      bool // stop trying other MXs: the reply goes to every recipient
}

// reply is what this failure alone would answer upstream.
func (f *failure) reply() *smtp.SMTPError {
	var se *smtp.SMTPError
	switch {
	case errors.As(f.err, &se):
		return &smtp.SMTPError{Code: se.Code, EnhancedCode: se.EnhancedCode, Message: f.where() + " said: " + se.Message}
	case f.kind == failPolicy:
		return &smtp.SMTPError{Code: 451, EnhancedCode: policyCode(f.result), Message: f.describe()}
	case f.kind == failDNS:
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 4, 3}, Message: f.describe()}
	}
	return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 4, 1}, Message: f.describe()}
}

func (f *failure) where() string {
	if f.addr == "" {
		return f.host
	}
	return f.host + " [" + hostOf(f.addr) + "]"
}

// describe is one line for the summary: "mx.example [192.0.2.1]: certificate-host-mismatch: x509: ...".
func (f *failure) describe() string {
	var se *smtp.SMTPError
	switch {
	case errors.As(f.err, &se):
		return fmt.Sprintf("%s said %d %d.%d.%d %s", f.where(), se.Code, se.EnhancedCode[0], se.EnhancedCode[1], se.EnhancedCode[2], se.Message)
	case f.result != "":
		return fmt.Sprintf("%s: %s: %v", f.where(), f.result, f.err)
	}
	return fmt.Sprintf("%s: %v", f.where(), f.err)
}

// policyCode is the enhanced code for a TLS requirement not met
// (RFC 3463 §3.8, RFC 5248): no STARTTLS is "encryption needed" (4.7.10);
// a certificate or handshake that fails the plan is a cryptographic
// failure (4.7.5).
func policyCode(t tlsrpt.ResultType) smtp.EnhancedCode {
	if t == tlsrpt.StartTLSNotSupported {
		return smtp.EnhancedCode{4, 7, 10}
	}
	return smtp.EnhancedCode{4, 7, 5}
}

// connectFailure turns a connect error into a failure.
func connectFailure(host, addr string, err error) failure {
	f := failure{host: host, addr: addr, kind: failNetwork, err: err}
	var se *stepError
	if errors.As(err, &se) {
		switch {
		case se.policyFailure():
			f.kind, f.result = failPolicy, se.result
		case se.reply != nil:
			f.kind, f.err = failServer, se.reply
			// A 5xx greeting or EHLO refuses us, not the message: the
			// next MX may still take it (RFC 5321 §3.1), so not final.
		}
		if se.reply == nil {
			f.err = fmt.Errorf("%s: %w", se.step, se.err)
		}
	}
	return f
}

// judge turns the replies of one transaction into final per-recipient
// replies, or a failure when the next address should be tried.
// classes[i] is the failure class (failure.class) of a reply that is not
// 2xx: refused when the server said so, network when it did not answer.
func judge(req Request, host, addr string, out outcome, err error) (_ Result, classes []string, _ *failure) {
	f := &failure{host: host, addr: addr}
	switch {
	case out.mail == nil:
		// Lost before MAIL was answered: nothing was accepted.
		f.kind, f.err = failNetwork, fmt.Errorf("connection lost before MAIL was answered: %v", err)
		return Result{}, nil, f
	case out.mail.Code/100 == 4:
		f.kind, f.err = failServer, out.mail
		return Result{}, nil, f
	case out.mail.Code/100 != 2:
		f.kind, f.err, f.final = failFinal, out.mail, true
		return Result{}, nil, f
	}
	res := Result{Replies: make([]*smtp.SMTPError, len(req.To))}
	classes = make([]string, len(req.To))
	for i := range req.To {
		var r *smtp.SMTPError
		class := metrics.FailureRefused
		switch {
		case i < len(out.rcpt) && out.rcpt[i].Code/100 != 2:
			r = said(f, out.rcpt[i], "RCPT TO")
		case i >= len(out.rcpt) || err != nil && out.data == nil:
			r = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 4, 2}, Message: f.where() + ": connection lost before the end of DATA was answered"}
			class = metrics.FailureNetwork
		case out.data == nil:
			r = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: f.where() + ": no DATA reply"}
			class = metrics.FailureNetwork
		default:
			r = said(f, out.data, "end of DATA")
		}
		res.Replies[i], classes[i] = r, class
	}
	return res, classes, nil
}

// said passes a server's reply upstream with its class and enhanced code,
// naming the MX and the command it answered.
func said(f *failure, r *smtp.SMTPError, to string) *smtp.SMTPError {
	return &smtp.SMTPError{Code: r.Code, EnhancedCode: r.EnhancedCode, Message: fmt.Sprintf("%s said: %s (in reply to %s)", f.where(), r.Message, to)}
}

// summarise is the reply when no MX took the message: 4xx naming every
// address tried, with the code of the most telling failure. It is 5xx only
// when every MX reached refused this message as it is (5.6.x, 5.3.4).
func summarise(tried []failure) *smtp.SMTPError {
	if len(tried) == 0 {
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 4, 4}, Message: "no MX host to try"}
	}
	bi, allMessage := mostTelling(tried)
	top := tried[bi]
	r := top.reply()
	if len(tried) > 1 || top.kind != failServer {
		parts := make([]string, len(tried))
		for i, f := range tried {
			parts[i] = f.describe()
		}
		r.Message = truncate(strings.Join(parts, "; "), 400)
	}
	if !allMessage && r.Code/100 == 5 {
		r.Code, r.EnhancedCode[0] = 451, 4
	}
	return r
}

// mostTelling is the index of the most telling failure of tried: the
// greatest kind, failures of the message itself (5.6.x, 5.3.4) last.
// allMessage reports that every one was such a failure (the index is then
// 0); -1 when tried is empty.
func mostTelling(tried []failure) (bi int, allMessage bool) {
	if len(tried) == 0 {
		return -1, false
	}
	bi = -1
	for i, f := range tried {
		if f.kind != failMessage && (bi < 0 || f.kind > tried[bi].kind) {
			bi = i
		}
	}
	if bi < 0 {
		return 0, true
	}
	return bi, false
}

// timeoutReply is the reply when the delivery budget ran out (4.4.7).
func timeoutReply(tried []failure) *smtp.SMTPError {
	msg := "delivery timed out"
	if len(tried) > 0 {
		msg += " after " + summarise(tried).Message
	}
	return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 4, 7}, Message: truncate(msg, 400)}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-3] + "..."
}

func hostOf(addr string) string {
	if i := strings.LastIndexByte(addr, ':'); i > 0 {
		return strings.Trim(addr[:i], "[]")
	}
	return addr
}
