package main

import (
	"fmt"
	"maps"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// dnsServer answers for the benchmark's one destination domain: an MX
// naming mx.<domain>, whose A record is 127.0.0.1. Other names of the
// domain get NODATA (no AAAA, TXT, TLSA: no DANE, no MTA-STS), anything
// else NXDOMAIN. It serves UDP and TCP on the same loopback port.
type dnsServer struct {
	Addr string
	udp  *dns.Server
	tcp  *dns.Server

	mu      sync.Mutex
	queries map[string]int64 // "TYPE name" → count
}

// Queries returns how many queries came, by type and name.
func (s *dnsServer) Queries() map[string]int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.queries)
}

func startDNS(domain string) (*dnsServer, error) {
	zone := dns.Fqdn(strings.ToLower(domain))
	mx := "mx." + zone
	s := &dnsServer{queries: map[string]int64{}}
	h := dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		for _, qq := range q.Question {
			s.mu.Lock()
			s.queries[dns.Type(qq.Qtype).String()+" "+strings.ToLower(qq.Name)]++
			s.mu.Unlock()
		}
		m := new(dns.Msg)
		m.SetReply(q)
		m.RecursionAvailable = true
		if len(q.Question) == 1 {
			qq := q.Question[0]
			name := strings.ToLower(qq.Name)
			hdr := dns.RR_Header{Name: qq.Name, Class: dns.ClassINET, Ttl: 300, Rrtype: qq.Qtype}
			switch {
			case name == zone && qq.Qtype == dns.TypeMX:
				m.Answer = append(m.Answer, &dns.MX{Hdr: hdr, Preference: 10, Mx: mx})
			case name == mx && qq.Qtype == dns.TypeA:
				m.Answer = append(m.Answer, &dns.A{Hdr: hdr, A: net.IPv4(127, 0, 0, 1)})
			case name == zone || name == mx:
				// NODATA
			default:
				m.Rcode = dns.RcodeNameError
			}
		}
		w.WriteMsg(m)
	})
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", pc.LocalAddr().String())
	if err != nil {
		pc.Close()
		return nil, fmt.Errorf("dns: tcp on the udp port: %w", err)
	}
	s.Addr = pc.LocalAddr().String()
	s.udp = &dns.Server{PacketConn: pc, Handler: h}
	s.tcp = &dns.Server{Listener: l, Handler: h}
	for _, srv := range []*dns.Server{s.udp, s.tcp} {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		go srv.ActivateAndServe()
		select {
		case <-started:
		case <-time.After(5 * time.Second):
			s.Close()
			return nil, fmt.Errorf("dns: server on %s did not start", s.Addr)
		}
	}
	return s, nil
}

func (s *dnsServer) Close() {
	s.udp.Shutdown()
	s.tcp.Shutdown()
}
