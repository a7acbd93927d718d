package config

import (
	"fmt"
	"reflect"
	"strings"

	"gopkg.in/yaml.v3"
)

func typeOf[T any]() reflect.Type { return reflect.TypeFor[T]() }

var unmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()

// checkKeys walks the YAML tree beside the Go type: every mapping key must
// be a field of the struct at that place. It records each key's path by
// line so later decoding errors can name the key.
func checkKeys(n *yaml.Node, path string, t reflect.Type, lines map[int]string) error {
	if n.Kind == yaml.DocumentNode {
		if len(n.Content) == 0 {
			return nil
		}
		return checkKeys(n.Content[0], path, t, lines)
	}
	if path != "" {
		lines[n.Line] = path
	}
	if reflect.PointerTo(t).Implements(unmarshalerType) {
		return nil
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return fmt.Errorf("%w: %s (line %d): expected a mapping of keys", ErrInvalid, orTop(path), n.Line)
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			f, ok := fieldByTag(t, k.Value)
			key := join(path, k.Value)
			if !ok {
				return fmt.Errorf("%w: %s (line %d): unknown key (known: %s)", ErrInvalid, key, k.Line, strings.Join(tags(t), ", "))
			}
			lines[k.Line] = key
			if err := checkKeys(v, key, f.Type, lines); err != nil {
				return err
			}
		}
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			return fmt.Errorf("%w: %s (line %d): expected a mapping", ErrInvalid, orTop(path), n.Line)
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			key := join(path, n.Content[i].Value)
			lines[n.Content[i].Line] = key
			if err := checkKeys(n.Content[i+1], key, t.Elem(), lines); err != nil {
				return err
			}
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			return fmt.Errorf("%w: %s (line %d): expected a list", ErrInvalid, orTop(path), n.Line)
		}
		for i, e := range n.Content {
			if err := checkKeys(e, fmt.Sprintf("%s[%d]", path, i), t.Elem(), lines); err != nil {
				return err
			}
		}
	}
	return nil
}

func fieldByTag(t reflect.Type, key string) (reflect.StructField, bool) {
	for i := 0; i < t.NumField(); i++ {
		if f := t.Field(i); yamlName(f) == key {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

func tags(t reflect.Type) []string {
	var out []string
	for i := 0; i < t.NumField(); i++ {
		out = append(out, yamlName(t.Field(i)))
	}
	return out
}

func yamlName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	return name
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func orTop(path string) string {
	if path == "" {
		return "top level"
	}
	return path
}

// isHostname reports whether s is a syntactically valid LDH host name
// (RFC 1123 §2.1), given as ASCII.
func isHostname(s string) bool {
	s = strings.TrimSuffix(s, ".")
	if s == "" || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}
