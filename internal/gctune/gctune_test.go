package gctune

import "testing"

func TestPercent(t *testing.T) {
	for _, tc := range []struct {
		live uint64
		want int
	}{
		{0, MaxPercent},
		{20 << 20, MaxPercent},  // an 80 MiB heap: well within
		{36 << 20, MaxPercent},  // 144 MiB: exactly the budget
		{48 << 20, 200},         // 144 MiB
		{72 << 20, MinPercent},  // 144 MiB
		{500 << 20, MinPercent}, // past the budget: Go's default, no tighter
	} {
		if got := Percent(tc.live, Budget); got != tc.want {
			t.Errorf("Percent(%d MiB) = %d, want %d", tc.live>>20, got, tc.want)
		}
	}
}
