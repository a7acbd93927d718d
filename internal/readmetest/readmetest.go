// Package readmetest reads the README's tables in tests, so that what the
// README promises a client sees is checked against what it sees.
package readmetest

import (
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// Reply returns the first `quoted` text of the README table row whose
// first cell starts with situation. dir is the package directory's path
// to the repository root ("..", "../..").
func Reply(t testing.TB, root, situation string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, "| "+situation) {
			continue
		}
		cells := strings.Split(line, "|")
		if len(cells) < 3 {
			break
		}
		if m := quoted.FindStringSubmatch(cells[2]); m != nil {
			return m[1]
		}
	}
	t.Fatalf("README.md has no table row %q with a `reply`", situation)
	return ""
}

var quoted = regexp.MustCompile("`([^`]+)`")

// Fill replaces the README's placeholders (upper-case words such as
// SENDER) with values, longest first (RECIPIENT before IP).
func Fill(s string, values map[string]string) string {
	keys := slices.Collect(maps.Keys(values))
	slices.SortFunc(keys, func(a, b string) int { return len(b) - len(a) })
	for _, k := range keys {
		s = strings.ReplaceAll(s, k, values[k])
	}
	return s
}
