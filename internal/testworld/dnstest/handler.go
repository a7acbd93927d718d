package dnstest

import (
	"net"
	"strings"

	"github.com/miekg/dns"
)

// maxChain bounds CNAME chains followed within the server's data.
const maxChain = 8

// serveDNS answers one query according to the records and rules.
func (s *Server) serveDNS(w dns.ResponseWriter, req *dns.Msg) {
	resp, ok := s.answer(req, isUDP(w))
	if !ok {
		return // dropped: the client must time out
	}
	w.WriteMsg(resp)
}

// answer builds the response to req; ok is false to drop it.
func (s *Server) answer(req *dns.Msg, udp bool) (resp *dns.Msg, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.queries = append(s.queries, req.Question...)

	resp = new(dns.Msg)
	resp.SetReply(req)
	resp.RecursionAvailable = true
	if opt := req.IsEdns0(); opt != nil {
		resp.SetEdns0(opt.UDPSize(), opt.Do())
	}
	if len(req.Question) != 1 {
		resp.Rcode = dns.RcodeFormatError
		return resp, true
	}
	q := req.Question[0]
	k := key{canonical(q.Name), q.Qtype}
	if s.drops[k] {
		return nil, false
	}
	if rcode, ok := s.rcodes[k]; ok {
		resp.Rcode = rcode
		return resp, true
	}
	if udp && s.truncate {
		resp.Truncated = true
		return resp, true
	}

	rcode, answer, names := s.resolve(k.name, q.Qtype)
	resp.Rcode = rcode
	resp.Answer = answer
	if rcode == dns.RcodeNameError || !hasType(answer, q.Qtype) {
		// RFC 2308 §3: a negative answer carries the zone's SOA, if the
		// test added one, so that it may be cached.
		if soa := s.soaFor(names[len(names)-1]); soa != nil {
			resp.Ns = []dns.RR{soa}
		}
	}
	// RFC 6840 §5.8: AD only for a query that asked for it (DO or AD),
	// and only if every name in the chain validated.
	if req.AuthenticatedData || req.IsEdns0() != nil && req.IsEdns0().Do() {
		resp.AuthenticatedData = s.authentic(names)
	}
	return resp, true
}

// resolve looks up name and qtype in the data, following CNAMEs. It
// returns the rcode, the answer section and the names visited.
func (s *Server) resolve(name string, qtype uint16) (int, []dns.RR, []string) {
	var answer []dns.RR
	names := []string{name}
	for range maxChain {
		rrs, exists := s.records[name]
		if !exists {
			// RFC 6604 §2: the rcode describes the last name in the chain.
			return dns.RcodeNameError, answer, names
		}
		cname := cnameIn(rrs)
		if cname == nil || qtype == dns.TypeCNAME {
			for _, rr := range rrs {
				if rr.Header().Rrtype == qtype {
					answer = append(answer, dns.Copy(rr))
				}
			}
			return dns.RcodeSuccess, answer, names
		}
		answer = append(answer, dns.Copy(cname))
		name = canonical(cname.Target)
		names = append(names, name)
	}
	return dns.RcodeServerFailure, nil, names
}

// authentic reports whether every name is marked authentic.
func (s *Server) authentic(names []string) bool {
	for _, n := range names {
		on, ok := s.auth[n]
		if !ok {
			on = s.authAll
		}
		if !on {
			return false
		}
	}
	return true
}

// soaFor returns a copy of the SOA record owned by name or its closest
// ancestor that has one, or nil.
func (s *Server) soaFor(name string) dns.RR {
	for {
		for _, rr := range s.records[name] {
			if rr.Header().Rrtype == dns.TypeSOA {
				return dns.Copy(rr)
			}
		}
		if name == "." {
			return nil
		}
		i := strings.IndexByte(name, '.')
		name = name[i+1:]
		if name == "" {
			name = "."
		}
	}
}

func hasType(rrs []dns.RR, qtype uint16) bool {
	for _, rr := range rrs {
		if rr.Header().Rrtype == qtype {
			return true
		}
	}
	return false
}

func cnameIn(rrs []dns.RR) *dns.CNAME {
	for _, rr := range rrs {
		if c, ok := rr.(*dns.CNAME); ok {
			return c
		}
	}
	return nil
}

func isUDP(w dns.ResponseWriter) bool {
	_, ok := w.LocalAddr().(*net.UDPAddr)
	return ok
}
