package tlsname

import (
	"crypto/tls"
	"testing"
)

func TestCipherMatchesStandardLibrary(t *testing.T) {
	for _, id := range []uint16{tls.TLS_AES_128_GCM_SHA256, tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384, tls.TLS_RSA_WITH_RC4_128_SHA, 0x1234} {
		if got, want := Cipher(id), tls.CipherSuiteName(id); got != want {
			t.Errorf("Cipher(%#x) = %q, want %q", id, got, want)
		}
	}
	if n := testing.AllocsPerRun(100, func() { Cipher(tls.TLS_AES_128_GCM_SHA256) }); n != 0 {
		t.Errorf("Cipher allocates %v times per call, want 0", n)
	}
}
