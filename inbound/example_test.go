package inbound_test

import (
	"context"
	"crypto/tls"
	"log"
	"net"
	"time"

	"github.com/caliop/relay/inbound"
)

// Port 25 for example.org in front of Postfix, which lists Caliop in
// smtpd_authorized_xclient_hosts so that its restrictions see the real
// clients; partner.example must use STARTTLS.
func Example() {
	cert, err := tls.LoadX509KeyPair("mx.example.org.crt", "mx.example.org.key")
	if err != nil {
		log.Fatal(err)
	}
	stats := &inbound.Stats{}
	srv := inbound.New(inbound.Options{
		Hostname:       "mx.example.org",
		Domains:        []string{"example.org"},
		NextHop:        "127.0.0.1:10026",
		TLS:            &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		RequireTLSFrom: []string{"partner.example"},
		Limits:         inbound.Limits{MinDataRate: 1 << 10},
		Stats:          stats,
	})
	ln, err := net.Listen("tcp", ":25")
	if err != nil {
		log.Fatal(err)
	}
	go srv.Serve(ln)
	// ... until a signal:
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv.Shutdown(ctx)
	for domain, n := range stats.Sessions() {
		log.Printf("%q: %d plaintext, %d TLS", domain, n.Plain, n.TLS)
	}
}
