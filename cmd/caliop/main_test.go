package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRunExitCodes(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.yml")
	os.WriteFile(bad, []byte("outbound:\n  default: plaintext\n"), 0o600)
	tests := []struct {
		args []string
		code int
		out  string
	}{
		{[]string{"version"}, 0, "caliop dev"},
		{[]string{}, 2, "usage:"},
		{[]string{"frobnicate"}, 2, "usage:"},
		{[]string{"serve", "--config", bad}, 2, `outbound.default (line 2): "plaintext" is not a level`},
		{[]string{"serve", "--config", filepath.Join(t.TempDir(), "missing.yml")}, 2, "no such file"},
	}
	for _, tc := range tests {
		var out, errOut bytes.Buffer
		code := run(tc.args, &out, &errOut)
		if code != tc.code || !strings.Contains(out.String()+errOut.String(), tc.out) {
			t.Errorf("caliop %v: exit %d, output %q; want %d and %q", tc.args, code, out.String()+errOut.String(), tc.code, tc.out)
		}
	}
}
