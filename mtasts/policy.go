package mtasts

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/net/idna"
)

// Mode is a policy's mode (RFC 8461 §5).
type Mode string

const (
	// ModeEnforce: deliver only to an MX the policy names, over TLS with
	// a WebPKI-valid certificate for the MX name.
	ModeEnforce Mode = "enforce"
	// ModeTesting: check and report failures (TLS-RPT), but deliver.
	ModeTesting Mode = "testing"
	// ModeNone: the domain has withdrawn its policy.
	ModeNone Mode = "none"
)

// MaxMaxAge is the longest policy lifetime (RFC 8461 §3.2: max_age has a
// maximum value of 31557600 seconds, about one year). Larger values are
// capped to it.
const MaxMaxAge = 31557600 * time.Second

// ErrPolicyInvalid: the fetched policy does not parse (RFC 8461 §3.2). The
// RFC 8460 result type is "sts-policy-invalid"; the domain has no usable new
// policy, and a cached policy still applies.
var ErrPolicyInvalid = errors.New("mta-sts policy invalid")

// Policy is a parsed MTA-STS policy (RFC 8461 §3.2).
type Policy struct {
	Mode Mode
	// MX holds the mx patterns in lowercase A-labels without trailing
	// dot, such as "mail.example.com" or "*.example.net". It may be empty
	// only when Mode is ModeNone.
	MX []string
	// MaxAge is how long the policy may be cached, at most MaxMaxAge.
	MaxAge time.Duration
	// Text is the policy as fetched with CRLF turned into LF, for the
	// TLS-RPT policy-string (RFC 8460 §4.3) and for display.
	Text string
}

// Admits reports whether some mx pattern of the policy matches the MX
// host name (RFC 8461 §4.1, see MatchMX). A host in U-labels is converted
// to A-labels first. Admits does not look at the mode: under ModeTesting
// or ModeNone the caller delivers anyway.
func (p *Policy) Admits(host string) bool {
	if !isASCII(host) {
		a, err := idna.Lookup.ToASCII(host)
		if err != nil {
			return false
		}
		host = a
	}
	for _, pattern := range p.MX {
		if MatchMX(pattern, host) {
			return true
		}
	}
	return false
}

// ParsePolicy parses a policy body by the RFC 8461 §3.2 grammar:
//
//	sts-policy-record = sts-policy-field *WSP
//	                    *(sts-policy-term sts-policy-field *WSP)
//	                    [sts-policy-term]
//	sts-policy-term   = LF / CRLF
//
// with version, mode and max_age required, mx required at least once
// unless mode is "none", and unknown fields ignored. Field names are
// case-sensitive. Empty lines are accepted at the end only. Every error
// wraps ErrPolicyInvalid and names the line.
func ParsePolicy(body []byte) (*Policy, error) {
	p, err := parsePolicy(body)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrPolicyInvalid, err)
	}
	return p, nil
}

// policyParser holds the first occurrence of each single-valued field.
type policyParser struct {
	p                     Policy
	version, mode, maxAge bool
}

func parsePolicy(body []byte) (*Policy, error) {
	if !utf8.Valid(body) {
		return nil, errors.New("not valid UTF-8")
	}
	text := string(body)
	var pp policyParser
	lines := strings.Split(text, "\n")
	blank := 0 // number of the first empty line, if any
	for i, line := range lines {
		num := i + 1
		if i < len(lines)-1 { // terminated by LF, maybe CRLF
			line = strings.TrimSuffix(line, "\r")
		}
		if line == "" {
			if blank == 0 {
				blank = num
			}
			continue
		}
		if blank != 0 {
			return nil, fmt.Errorf("line %d: empty line before the end of the policy", blank)
		}
		if err := pp.field(line); err != nil {
			return nil, fmt.Errorf("line %d: %v", num, err)
		}
	}
	if err := pp.complete(); err != nil {
		return nil, err
	}
	pp.p.Text = strings.ReplaceAll(text, "\r\n", "\n")
	return &pp.p, nil
}

// field parses one line: name ":" *WSP value *WSP.
func (pp *policyParser) field(line string) error {
	name, value, ok := strings.Cut(line, ":")
	if !ok {
		return fmt.Errorf(`%q has no ":"`, line)
	}
	if !validExtName(name) {
		return fmt.Errorf("field name %q is not 1 to 32 letters, digits, \"_\", \"-\" or \".\" starting with a letter or digit", name)
	}
	value = strings.TrimRight(trimWSP(value), " \t")
	// RFC 8461 §3.2: of a duplicated field other than mx, all entries
	// except the first SHALL be ignored; they still are well-formed
	// fields (sts-policy-extension).
	switch {
	case name == "version" && !pp.version:
		// %s"STSv1": case-sensitive.
		if value != "STSv1" {
			return fmt.Errorf("version %q is not STSv1", value)
		}
		pp.version = true
	case name == "mode" && !pp.mode:
		switch m := Mode(value); m {
		case ModeEnforce, ModeTesting, ModeNone:
			pp.p.Mode, pp.mode = m, true
		default:
			return fmt.Errorf("mode %q is not enforce, testing or none", value)
		}
	case name == "max_age" && !pp.maxAge:
		d, err := parseMaxAge(value)
		if err != nil {
			return err
		}
		pp.p.MaxAge, pp.maxAge = d, true
	case name == "mx":
		pattern, err := mxPattern(value)
		if err != nil {
			return fmt.Errorf("mx %q: %v", value, err)
		}
		pp.p.MX = append(pp.p.MX, pattern)
	default:
		return checkPolicyExtValue(name, value)
	}
	return nil
}

// parseMaxAge parses sts-policy-max-age-value = 1*10(DIGIT) (RFC 8461
// §3.2), capped at MaxMaxAge.
func parseMaxAge(value string) (time.Duration, error) {
	if value == "" || len(value) > 10 || strings.Trim(value, "0123456789") != "" {
		return 0, fmt.Errorf("max_age %q is not 1 to 10 digits", value)
	}
	secs, err := strconv.ParseUint(value, 10, 64)
	if err != nil { // unreachable: at most 10 digits
		return 0, fmt.Errorf("max_age %q: %v", value, err)
	}
	// Cap before converting: 9999999999 s overflows a time.Duration.
	if secs > uint64(MaxMaxAge/time.Second) {
		return MaxMaxAge, nil
	}
	return time.Duration(secs) * time.Second, nil
}

// checkPolicyExtValue checks the value of an unknown or ignored field
// (RFC 8461 §3.2):
//
//	sts-policy-ext-value = sts-policy-vchar
//	                       [*(%x20 / sts-policy-vchar) sts-policy-vchar]
//	sts-policy-vchar     = %x21-7E / UTF8-2 / UTF8-3 / UTF8-4
//
// The caller has removed the leading and trailing white space.
func checkPolicyExtValue(name, value string) error {
	if value == "" {
		return fmt.Errorf("field %q has an empty value", name)
	}
	for i := 0; i < len(value); i++ {
		if c := value[i]; c < 0x20 || c == 0x7f {
			return fmt.Errorf("value of field %q contains the control character %q", name, c)
		}
	}
	return nil
}

// complete checks the required fields (RFC 8461 §3.2).
func (pp *policyParser) complete() error {
	switch {
	case !pp.version:
		return errors.New("no version field")
	case !pp.mode:
		return errors.New("no mode field")
	case !pp.maxAge:
		return errors.New("no max_age field")
	case len(pp.p.MX) == 0 && pp.p.Mode != ModeNone:
		return fmt.Errorf("no mx field, required in mode %s", pp.p.Mode)
	}
	return nil
}
