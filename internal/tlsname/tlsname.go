// Package tlsname names TLS cipher suites without the allocations of
// crypto/tls.CipherSuiteName, which builds the whole suite list on every
// call: names are logged and written into a Received header per message.
package tlsname

import (
	"crypto/tls"
	"fmt"
)

var ciphers = func() map[uint16]string {
	m := make(map[uint16]string)
	for _, list := range [][]*tls.CipherSuite{tls.CipherSuites(), tls.InsecureCipherSuites()} {
		for _, cs := range list {
			m[cs.ID] = cs.Name
		}
	}
	return m
}()

// Cipher returns the standard name of a cipher suite, or its hex value as
// tls.CipherSuiteName does for an unknown one.
func Cipher(id uint16) string {
	if name, ok := ciphers[id]; ok {
		return name
	}
	return fmt.Sprintf("0x%04X", id)
}
