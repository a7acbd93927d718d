package config

import (
	"errors"
	"testing"
)

// FuzzParse: any file is a configuration or one error wrapping
// ErrInvalid (never a panic, never an error of another kind), and a
// configuration that loads keeps the invariants the rest relies on.
// Longer runs: go test ./config -run XXX -fuzz FuzzParse
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"hostname: relay.example.net\ndns: {servers: [\"127.0.0.1\"]}\n",
		"hostname: relay.example.net\ndns: {servers: [\"127.0.0.1:5353\"]}\noutbound:\n  default: verify\n  domains:\n    partner.example: {level: dane}\n    old.example: {level: none}\n",
		"hostname: relay.example.net\ndns: {servers: [\"::1\"]}\noutbound: {limits: {max_per_ip: 0}}\n",
		"hostname: x\n", "{", "- a\n- b\n", "hostname: relay.example.net\noutbound: {delivery_timeout: 1h}\n",
		"hostname: relay.example.net\ndns: {servers: [\"127.0.0.1\"]}\noutbound: {auth: {users: {u: \"$2a$04$abc\"}}}\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Parse(b)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Parse(%q): %v does not wrap ErrInvalid", b, err)
			}
			return
		}
		o := c.Outbound
		if o.Default != LevelEncrypt && o.Default != LevelVerify {
			t.Fatalf("outbound.default %q accepted", o.Default)
		}
		if o.DeliveryTimeout <= 0 || o.Limits.MaxPerIP < 1 || o.Auth.MaxFailuresPerIP < 1 {
			t.Fatalf("limits accepted: %+v", o)
		}
	})
}
