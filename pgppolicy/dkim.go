package pgppolicy

import (
	"bytes"
	"io"
	"strings"

	"github.com/emersion/go-msgauth/dkim"
)

// signedFields are the header fields a new signature covers when the
// message has them (RFC 6376 §5.4.1, From first and required, with the
// MIME fields that describe the encrypted body and Message-ID).
// DKIM-Signature, Received and Return-Path are never signed: hops add
// and change them.
var signedFields = []string{
	"From", "Reply-To", "Subject", "Date", "To", "Cc", "Resent-Date", "Resent-From",
	"Resent-To", "Resent-Cc", "In-Reply-To", "References", "List-Id", "List-Help",
	"List-Unsubscribe", "List-Subscribe", "List-Post", "List-Owner", "List-Archive",
	"Message-ID", "MIME-Version", "Content-Type", "Content-Transfer-Encoding",
}

// resign writes msg, an encrypted message whose outer header still holds
// the original DKIM signatures, signed again for domain: relaxed/relaxed
// (a hop that re-folds a header keeps it valid), over the signedFields
// present. The original signatures, which the encryption broke, do not
// stay as failing signatures: those of domain are removed (the new one
// replaces them), others are renamed X-Original-DKIM-Signature.
func resign(w io.Writer, msg []byte, domain string, key DKIMKey) error {
	msg = retireSignatures(msg, domain)
	opts := &dkim.SignOptions{
		Domain: domain, Selector: key.Selector, Signer: key.Signer,
		HeaderCanonicalization: dkim.CanonicalizationRelaxed,
		BodyCanonicalization:   dkim.CanonicalizationRelaxed,
		HeaderKeys:             presentFields(msg),
	}
	return dkim.Sign(w, bytes.NewReader(msg), opts)
}

// retireSignatures rewrites the header section of msg: DKIM-Signature
// fields with d=domain are dropped, the others renamed
// X-Original-DKIM-Signature. The body is left as it is.
func retireSignatures(msg []byte, domain string) []byte {
	head, body := splitHeader(msg)
	var out bytes.Buffer
	out.Grow(len(msg))
	for _, f := range fields(head) {
		name, value, _ := strings.Cut(string(f), ":")
		if !strings.EqualFold(strings.TrimSpace(name), "DKIM-Signature") {
			out.Write(f)
			continue
		}
		if strings.EqualFold(tag(value, "d"), domain) {
			continue
		}
		out.WriteString("X-Original-DKIM-Signature:")
		out.WriteString(value)
	}
	out.Write(body)
	return out.Bytes()
}

// presentFields is signedFields less those msg's header lacks; From is
// always there (RFC 6376 §5.4: it must be signed).
func presentFields(msg []byte) []string {
	head, _ := splitHeader(msg)
	have := map[string]bool{}
	for _, f := range fields(head) {
		name, _, _ := strings.Cut(string(f), ":")
		have[strings.ToLower(strings.TrimSpace(name))] = true
	}
	out := []string{"From"}
	for _, k := range signedFields[1:] {
		if have[strings.ToLower(k)] {
			out = append(out, k)
		}
	}
	return out
}

// splitHeader splits msg after the empty line that ends its header
// section (the body keeps its leading CRLF).
func splitHeader(msg []byte) (head, body []byte) {
	if i := bytes.Index(msg, []byte("\r\n\r\n")); i >= 0 {
		return msg[:i+2], msg[i+2:]
	}
	return msg, nil
}

// fields splits a header section into its fields, each with its folded
// continuation lines and CRLFs.
func fields(head []byte) [][]byte {
	var out [][]byte
	for len(head) > 0 {
		end := 0
		for {
			i := bytes.Index(head[end:], []byte("\r\n"))
			if i < 0 {
				end = len(head)
				break
			}
			end += i + 2
			if end >= len(head) || (head[end] != ' ' && head[end] != '\t') {
				break
			}
		}
		out = append(out, head[:end])
		head = head[end:]
	}
	return out
}

// tag is the value of a DKIM tag (RFC 6376 §3.2: tag=value; ...), white
// space removed, "" when absent.
func tag(value, name string) string {
	for _, t := range strings.Split(value, ";") {
		k, v, ok := strings.Cut(t, "=")
		if ok && strings.TrimSpace(k) == name {
			return strings.Join(strings.Fields(v), "")
		}
	}
	return ""
}
