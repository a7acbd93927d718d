package smtpfront

import "testing"

func TestChunkSize(t *testing.T) {
	for _, tc := range []struct {
		args string
		want int64
	}{
		{"42", 42}, {"42 LAST", 42}, {"42 last", 42}, {"", 0}, {"42 MORE", 0},
		{"42 LAST x", 0}, {"-1", 0}, {"4294967296", 0}, {"abc", 0},
	} {
		if got := ChunkSize(tc.args); got != tc.want {
			t.Errorf("ChunkSize(%q) = %d, want %d", tc.args, got, tc.want)
		}
	}
}
