package relay

import (
	"io"
	"strings"
	"testing"

	"github.com/caliop/relay/internal/testworld/mxtest"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// benchBody is a 4 KiB message, as the README's benchmark sends.
var benchBody = "From: a@sender.test\r\nTo: b@example.test\r\nSubject: bench\r\n\r\n" + strings.Repeat(strings.Repeat("x", 78)+"\r\n", 52)

// benchSOA lets the resolver cache negative answers (RFC 2308 §5).
const benchSOA = "test. 3600 IN SOA ns.test. hostmaster.test. 1 3600 600 86400 300"

// benchLog encodes log lines as in production (JSON, info) and drops
// them.
func benchLog() *zap.Logger {
	return zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(io.Discard), zap.InfoLevel))
}

// BenchmarkSMTPMessage is the per-message hot path of the SMTP listener:
// MAIL, RCPT (plan from the cache, the downstream transaction opened on a
// pooled TLS connection), DATA (spool, header, delivery), on one kept
// client connection. Allocations per message are in -benchmem's
// allocs/op; they include the test client's and the MX's, which run in
// this process too.
func BenchmarkSMTPMessage(b *testing.B) {
	w := newWorld(b, worldOpts{log: benchLog(), dnsCache: 10000, memoryBuffer: 1 << 20})
	mx := w.mx("mx.example.test", mxtest.Behavior{Discard: true})
	w.domain("example.test", "mx.example.test")
	w.dns.Add(benchSOA) // negative answers cached, as on the Internet
	c := smtpClient(b, w.smtp, false)
	send := func() {
		if err := c.Mail("a@sender.test", nil); err != nil {
			b.Fatal(err)
		}
		if err := c.Rcpt("b@example.test", nil); err != nil {
			b.Fatal(err)
		}
		wc, err := c.Data()
		if err != nil {
			b.Fatal(err)
		}
		if _, err := wc.Write([]byte(benchBody)); err != nil {
			b.Fatal(err)
		}
		if err := wc.Close(); err != nil {
			b.Fatal(err)
		}
	}
	send() // plan cached, connection pooled
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		send()
	}
	b.StopTimer()
	if n := mx.Received(); n != b.N+1 {
		b.Fatalf("MX received %d messages, want %d", n, b.N+1)
	}
}

// BenchmarkLMTPMessage is the same through the LMTP listener, three
// recipients of one domain per message, as Postfix sends them.
func BenchmarkLMTPMessage(b *testing.B) {
	w := newWorld(b, worldOpts{log: benchLog(), dnsCache: 10000, memoryBuffer: 1 << 20})
	mx := w.mx("mx.example.test", mxtest.Behavior{Discard: true})
	w.domain("example.test", "mx.example.test")
	w.dns.Add(benchSOA) // negative answers cached, as on the Internet
	c := smtpClient(b, w.lmtp, true)
	rcpts := []string{"a@example.test", "b@example.test", "c@example.test"}
	send := func() {
		if err := c.Mail("a@sender.test", nil); err != nil {
			b.Fatal(err)
		}
		for _, r := range rcpts {
			if err := c.Rcpt(r, nil); err != nil {
				b.Fatal(err)
			}
		}
		wc, err := c.Data()
		if err != nil {
			b.Fatal(err)
		}
		if _, err := wc.Write([]byte(benchBody)); err != nil {
			b.Fatal(err)
		}
		if _, err := wc.CloseWithLMTPResponse(); err != nil {
			b.Fatal(err)
		}
	}
	send()
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		send()
	}
	b.StopTimer()
	if n := mx.Received(); n != b.N+1 {
		b.Fatalf("MX received %d messages, want %d", n, b.N+1)
	}
}
