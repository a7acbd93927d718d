package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Load reads and checks the file at path. An empty file (or one of
// comments only) is refused: it is more likely a mistake than a wish for
// the embedded defaults, which running without --config gives.
func Load(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if emptyYAML(b) {
		return nil, fmt.Errorf("%w: %s is empty: write at least \"hostname: relay.example.net\" (deploy/caliop.yml is a complete example), or run without --config for the embedded defaults", ErrInvalid, path)
	}
	return Parse(b)
}

// emptyYAML reports a text of nothing but blank lines and comments.
func emptyYAML(b []byte) bool {
	for _, line := range strings.Split(string(b), "\n") {
		if l := strings.TrimSpace(line); l != "" && !strings.HasPrefix(l, "#") && l != "---" {
			return false
		}
	}
	return true
}

// tabIndent finds a tab in the indentation of a line, which YAML does not
// allow (and whose error from the parser does not say so).
func tabIndent(b []byte) error {
	for i, line := range strings.Split(string(b), "\n") {
		indent := line[:len(line)-len(strings.TrimLeft(line, " \t"))]
		if strings.Contains(indent, "\t") {
			return fmt.Errorf("%w: line %d: a tab in the indentation: YAML indents with spaces only", ErrInvalid, i+1)
		}
	}
	return nil
}

// Parse checks YAML text and applies defaults.
func Parse(b []byte) (*Config, error) {
	if err := tabIndent(b); err != nil {
		return nil, err
	}
	c := Defaults()
	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&root); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if root.Kind != 0 {
		lines := map[int]string{}
		if err := checkKeys(&root, "", typeOfConfig, lines); err != nil {
			return nil, err
		}
		if err := root.Decode(c); err != nil {
			return nil, withKey(err, lines)
		}
	}
	if err := c.finish(); err != nil {
		return nil, err
	}
	return c, nil
}

var unmarshalRE = regexp.MustCompile("cannot unmarshal !!(\\w+) `(.*)` into (\\S+)")

// plainTypeError says a YAML type mismatch in words: "want a whole
// number, got \"eight\"" rather than the parser's "cannot unmarshal !!str
// `eight` into int".
func plainTypeError(m string) string {
	sub := unmarshalRE.FindStringSubmatch(m)
	if sub == nil {
		return m
	}
	want := "a " + sub[3]
	switch t := sub[3]; {
	case strings.HasPrefix(t, "int"), strings.HasPrefix(t, "uint"):
		want = "a whole number"
	case strings.HasPrefix(t, "float"):
		want = "a number"
	case t == "bool":
		want = "true or false"
	case t == "string" || strings.HasSuffix(t, ".Level"):
		want = "a single value"
	case strings.HasPrefix(t, "[]"):
		want = "a list ([a, b] or lines starting with \"- \")"
	case strings.HasPrefix(t, "map["), strings.HasPrefix(t, "config."):
		want = "a mapping (key: value lines, indented)"
	}
	got := strconv.Quote(sub[2])
	switch sub[1] {
	case "seq":
		got = "a list"
	case "map":
		got = "a mapping"
	}
	return strings.Replace(m, sub[0], "want "+want+", got "+got, 1)
}

// withKey prefixes a yaml decoding error with the key at its line.
func withKey(err error, lines map[int]string) error {
	var te *yaml.TypeError
	msgs := []string{err.Error()}
	if errors.As(err, &te) {
		msgs = te.Errors
	}
	out := make([]string, 0, len(msgs))
	for _, m := range msgs {
		m = strings.TrimPrefix(m, "yaml: ")
		m = plainTypeError(m)
		if sub := lineRE.FindStringSubmatch(m); sub != nil {
			n, _ := strconv.Atoi(sub[1])
			if key, ok := lines[n]; ok {
				m = key + " (" + sub[0] + "):" + strings.TrimPrefix(m, sub[0]+":")
			}
		}
		out = append(out, m)
	}
	return fmt.Errorf("%w: %s", ErrInvalid, strings.Join(out, "; "))
}
