package smtpfront

import (
	"crypto/tls"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestReceived(t *testing.T) {
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	r := Received{Helo: "evil (x); [y]\r\nBcc: z", IP: netip.MustParseAddr("192.0.2.1"), Proto: Protocol("ESMTP", true, true),
		TLS: &tls.ConnectionState{Version: tls.VersionTLS13, CipherSuite: tls.TLS_AES_128_GCM_SHA256}, By: "relay.test", ID: "0123456789ab", Time: at}
	want := "Received: from evilx;yBcc:z ([192.0.2.1])\r\n\t(using TLSv1.3 with cipher TLS_AES_128_GCM_SHA256)\r\n\tby relay.test (Caliop) with ESMTPSA id 0123456789ab;\r\n\tSun, 01 Mar 2026 12:00:00 +0000\r\n"
	want = strings.Replace(want, "evilx;yBcc:z", "evilxyBcc:z", 1)
	if got := r.String(); got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	if got := (Received{IP: netip.MustParseAddr("::1"), Proto: "SMTP", By: "b", ID: "i", Time: at}).String(); !strings.HasPrefix(got, "Received: from unknown ([::1])\r\n\tby b") {
		t.Errorf("no HELO, no TLS: %q", got)
	}
}

func TestProtocol(t *testing.T) {
	for _, tc := range []struct {
		base      string
		tls, auth bool
		want      string
	}{
		{"SMTP", false, false, "SMTP"}, {"SMTP", true, false, "ESMTPS"}, {"ESMTP", false, true, "ESMTPA"},
		{"ESMTP", true, true, "ESMTPSA"}, {"LMTP", true, false, "LMTPS"},
	} {
		if got := Protocol(tc.base, tc.tls, tc.auth); got != tc.want {
			t.Errorf("Protocol(%s, %v, %v) = %s, want %s", tc.base, tc.tls, tc.auth, got, tc.want)
		}
	}
}

func TestDot(t *testing.T) {
	end := func(s string) int {
		d := DotBeginLine
		for i := 0; i < len(s); i++ {
			if d = d.Next(s[i]); d == DotEnd {
				return i + 1
			}
		}
		return -1
	}
	for in, want := range map[string]int{
		".\r\n": 3, "a\r\n.\r\n": 6, "..\r\n.\r\n": 7, "a\n.\n": -1, "a\r\n.x\r\n.\r\n": 10, "a.\r\n": -1,
	} {
		if got := end(in); got != want {
			t.Errorf("end of %q at %d, want %d", in, got, want)
		}
	}
}

func TestAdmission(t *testing.T) {
	a, b := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	ad := NewAdmission(3, func(x netip.Addr) int {
		if x == a {
			return 2
		}
		return 1
	})
	for i, tc := range []struct {
		addr netip.Addr
		want bool
	}{{a, true}, {a, true}, {a, false}, {b, true}, {b, false}} {
		if got := ad.Take(tc.addr); got != tc.want {
			t.Errorf("take %d (%s) = %v, want %v", i, tc.addr, got, tc.want)
		}
	}
	ad.Release(a)
	if !ad.Take(a) || ad.Take(netip.MustParseAddr("192.0.2.3")) {
		t.Error("a released slot is taken again, and the total limit (3) holds")
	}
}
