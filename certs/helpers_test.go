package certs

import (
	"crypto/tls"
	"net"
	"testing"
	"time"
)

// handshake runs a TLS handshake over an in-memory connection and returns
// the client's view of it.
func handshake(t *testing.T, server, client *tls.Config) (tls.ConnectionState, error) {
	t.Helper()
	sc, cc := net.Pipe()
	defer sc.Close()
	defer cc.Close()
	deadline := time.Now().Add(10 * time.Second)
	sc.SetDeadline(deadline)
	cc.SetDeadline(deadline)
	done := make(chan error, 1)
	go func() {
		s := tls.Server(sc, server)
		err := s.Handshake()
		if err != nil {
			sc.Close() // unblock the client
		}
		done <- err
	}()
	c := tls.Client(cc, client)
	err := c.Handshake()
	if err != nil {
		cc.Close()
	}
	serr := <-done
	if err == nil {
		err = serr
	}
	return c.ConnectionState(), err
}
