package wkd

import (
	"crypto/sha1"
	"testing"
)

// The hashes were checked against GnuPG 2.2.40:
// echo ADDRESS | /usr/lib/gnupg/gpg-wks-client --print-wkd-hash
func TestHashAndURLs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name          string
		local, domain string
		hash          string
		advanced      string
		direct        string
	}{
		{
			name:  "draft §3.1 example",
			local: "Joe.Doe", domain: "Example.ORG",
			hash:     "iy9q119eutrkn8s1mk4r39qejnbu3n5q",
			advanced: "https://openpgpkey.example.org/.well-known/openpgpkey/example.org/hu/iy9q119eutrkn8s1mk4r39qejnbu3n5q?l=Joe.Doe",
			direct:   "https://example.org/.well-known/openpgpkey/hu/iy9q119eutrkn8s1mk4r39qejnbu3n5q?l=Joe.Doe",
		},
		{
			name:  "only ASCII capitals folded",
			local: "ÄBC", domain: "example.org",
			hash:     "ud9bxcn7eq8b9bfbmjthn5bwe8ifr8y1", // of "Äbc"
			advanced: "https://openpgpkey.example.org/.well-known/openpgpkey/example.org/hu/ud9bxcn7eq8b9bfbmjthn5bwe8ifr8y1?l=%C3%84BC",
			direct:   "https://example.org/.well-known/openpgpkey/hu/ud9bxcn7eq8b9bfbmjthn5bwe8ifr8y1?l=%C3%84BC",
		},
		{
			name:  "subaddress kept and escaped",
			local: "joe+tag", domain: "example.org",
			hash:     "dk6eyoqa3a4a6a5h5yku4t3obdsxegor",
			advanced: "https://openpgpkey.example.org/.well-known/openpgpkey/example.org/hu/dk6eyoqa3a4a6a5h5yku4t3obdsxegor?l=joe%2Btag",
			direct:   "https://example.org/.well-known/openpgpkey/hu/dk6eyoqa3a4a6a5h5yku4t3obdsxegor?l=joe%2Btag",
		},
		{
			name:  "U-label domain, trailing dot",
			local: "joe", domain: "Bücher.example.",
			hash:     Hash("joe"),
			advanced: "https://openpgpkey.xn--bcher-kva.example/.well-known/openpgpkey/xn--bcher-kva.example/hu/" + Hash("joe") + "?l=joe",
			direct:   "https://xn--bcher-kva.example/.well-known/openpgpkey/hu/" + Hash("joe") + "?l=joe",
		},
		{
			name:  "space and ampersand escaped",
			local: "a b&c", domain: "example.org",
			hash:     Hash("a b&c"),
			advanced: "https://openpgpkey.example.org/.well-known/openpgpkey/example.org/hu/" + Hash("a b&c") + "?l=a%20b%26c",
			direct:   "https://example.org/.well-known/openpgpkey/hu/" + Hash("a b&c") + "?l=a%20b%26c",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := Hash(tt.local); got != tt.hash {
				t.Errorf("Hash(%q) = %q, want %q", tt.local, got, tt.hash)
			}
			if got := AdvancedURL(tt.local, tt.domain); got != tt.advanced {
				t.Errorf("AdvancedURL(%q, %q)\n got %s\nwant %s", tt.local, tt.domain, got, tt.advanced)
			}
			if got := DirectURL(tt.local, tt.domain); got != tt.direct {
				t.Errorf("DirectURL(%q, %q)\n got %s\nwant %s", tt.local, tt.domain, got, tt.direct)
			}
		})
	}
}

func TestHashFoldsASCIIOnly(t *testing.T) {
	t.Parallel()
	if Hash("ÄBC") != Hash("Äbc") {
		t.Error(`Hash("ÄBC") != Hash("Äbc"): ASCII capitals must be folded`)
	}
	if Hash("ÄBC") == Hash("äbc") {
		t.Error(`Hash("ÄBC") == Hash("äbc"): non-ASCII capitals must not be folded`)
	}
	sum := sha1.Sum([]byte("Äbc"))
	if got, want := Hash("ÄBC"), zbase32(sum[:]); got != want {
		t.Errorf("Hash(ÄBC) = %s, want z-base-32 of SHA-1(Äbc) %s", got, want)
	}
}

func TestZBase32(t *testing.T) {
	t.Parallel()
	// Examples from the z-base-32 specification (bit lengths that are
	// multiples of 8 only).
	tests := []struct {
		in   []byte
		want string
	}{
		{[]byte{0x00}, "yy"},
		{[]byte{0x80}, "oy"},
		{[]byte{0xf0, 0xbf, 0xc7}, "6n9hq"},
		{[]byte{0xd4, 0x7a, 0x04}, "4t7ye"},
		{nil, ""},
	}
	for _, tt := range tests {
		if got := zbase32(tt.in); got != tt.want {
			t.Errorf("zbase32(%x) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestSplitAddress(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in            string
		local, domain string
		ok            bool
	}{
		{"Joe.Doe@Example.ORG", "Joe.Doe", "example.org", true},
		{`"a@b"@example.org`, `"a@b"`, "example.org", true},
		{"joe@bücher.example", "joe", "xn--bcher-kva.example", true},
		{"joe@", "", "", false},
		{"@example.org", "", "", false},
		{"joe", "", "", false},
		{"joe@exa mple.org", "", "", false},
		{"joe@example..org", "", "", false},
	}
	for _, tt := range tests {
		l, d, err := splitAddress(tt.in)
		if (err == nil) != tt.ok || l != tt.local || d != tt.domain {
			t.Errorf("splitAddress(%q) = %q, %q, %v; want %q, %q, ok=%v", tt.in, l, d, err, tt.local, tt.domain, tt.ok)
		}
	}
}
