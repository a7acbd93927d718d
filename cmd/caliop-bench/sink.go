package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"net"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"
)

// sink is the destination MX: a go-smtp server that offers STARTTLS
// (self-signed certificate, enough for outbound.default: encrypt) but
// also takes plaintext, so that smtp-source, which has no STARTTLS, can
// load it directly. Bodies are read and discarded.
type sink struct {
	Addr string
	srv  *smtp.Server
	done chan struct{}

	connections atomic.Int64 // sessions (go-smtp makes one per connection)
	messages    atomic.Int64
	tlsMessages atomic.Int64
	bytes       atomic.Int64
	handshakes  atomic.Int64 // TLS handshakes completed
}

type sinkCounts struct {
	Connections, Messages, TLSMessages, Bytes int64
}

func startSink(name string) (*sink, error) {
	cert, err := selfSigned(name)
	if err != nil {
		return nil, err
	}
	return startSinkOn("127.0.0.1:0", name, cert)
}

// startSinkOn starts a sink on addr presenting cert.
func startSinkOn(addr, name string, cert tls.Certificate) (*sink, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	s := &sink{Addr: l.Addr().String(), done: make(chan struct{})}
	s.srv = smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		s.connections.Add(1)
		return &sinkSession{s: s, c: c}, nil
	}))
	s.srv.Domain = name
	s.srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert},
		VerifyConnection: func(tls.ConnectionState) error { s.handshakes.Add(1); return nil }}
	s.srv.ReadTimeout = time.Minute
	s.srv.WriteTimeout = time.Minute
	s.srv.MaxRecipients = 1000
	s.srv.ErrorLog = discardLog{}
	go func() {
		defer close(s.done)
		s.srv.Serve(l)
	}()
	return s, nil
}

func (s *sink) Counts() sinkCounts {
	return sinkCounts{s.connections.Load(), s.messages.Load(), s.tlsMessages.Load(), s.bytes.Load()}
}

func (s *sink) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if s.srv.Shutdown(ctx) != nil {
		s.srv.Close()
	}
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
	}
}

type sinkSession struct {
	s *sink
	c *smtp.Conn
}

func (ss *sinkSession) Mail(string, *smtp.MailOptions) error { return nil }
func (ss *sinkSession) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (ss *sinkSession) Reset()                               {}
func (ss *sinkSession) Logout() error                        { return nil }

func (ss *sinkSession) Data(r io.Reader) error {
	n, err := io.Copy(io.Discard, r)
	if err != nil {
		return err
	}
	ss.s.bytes.Add(n)
	ss.s.messages.Add(1)
	if _, ok := ss.c.TLSConnectionState(); ok {
		ss.s.tlsMessages.Add(1)
	}
	return nil
}

type discardLog struct{}

func (discardLog) Printf(string, ...any) {}
func (discardLog) Println(...any)        {}

// selfSigned makes an ECDSA P-256 certificate for name, valid one day.
func selfSigned(name string) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		return tls.Certificate{}, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: name},
		DNSNames:     []string{name},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}
