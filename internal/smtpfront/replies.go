package smtpfront

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"

	"github.com/emersion/go-smtp"
	"go.uber.org/zap"
)

// ReplyLine is r as one reply line, CRLF included, for a front that
// writes to the connection itself (a refusal at connect, a hang-up).
func ReplyLine(r *smtp.SMTPError) string {
	ec := r.EnhancedCode
	return fmt.Sprintf("%d %d.%d.%d %s\r\n", r.Code, ec[0], ec[1], ec[2], r.Message)
}

// ShuttingDown is the reply of a front that stops: RFC 5321 §3.8, a
// server shutting down may close with 421 at any time.
func ShuttingDown(host string) *smtp.SMTPError {
	return &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 3, 2}, Message: host + " shutting down, try again later"}
}

// TooManyConnections refuses a connection over a front's limits.
func TooManyConnections(host string) *smtp.SMTPError {
	return &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 7, 0}, Message: host + " too many connections, try again later"}
}

// LocalError keeps an internal fault temporary (451 4.3.0).
func LocalError(err error) *smtp.SMTPError {
	return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Local error: " + err.Error()}
}

// NewID is a transaction id: 12 hex digits, in the Received header, the
// log lines and the final replies.
func NewID() string {
	var b [6]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Logger adapts zap to go-smtp's ErrorLog.
type Logger struct{ L *zap.Logger }

func (z Logger) Printf(format string, v ...any) { z.L.Sugar().Warnf(format, v...) }
func (z Logger) Println(v ...any)               { z.L.Sugar().Warnln(v...) }

// goSMTPNoRecipients is go-smtp's reply to DATA or BDAT when no RCPT was
// accepted, which its API does not let a backend change.
const goSMTPNoRecipients = "502 5.5.1 Missing RCPT TO command.\r\n"

// NoValidRecipients is the reply RFC 5321 §3.3 gives for DATA when every
// RCPT was refused, "554 no valid recipients" (RFC 2920 §3.1 for a
// pipelined DATA), in place of go-smtp's 502, which says "command not
// implemented". A front that writes go-smtp's replies passes them here.
func NoValidRecipients(line []byte) []byte {
	if string(line) == goSMTPNoRecipients {
		return []byte("554 5.5.1 No valid recipients\r\n")
	}
	return line
}
