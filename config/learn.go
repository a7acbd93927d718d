package config

import (
	"fmt"
	"strings"
	"time"

	"golang.org/x/net/idna"
)

// Learn configures learned TLS policies: a destination domain whose
// deliveries proved authenticated TLS long enough keeps requiring it
// (README, Learned policies).
type Learn struct {
	// Mode: off (nothing learned), report (learned and counted, no
	// delivery changes) or enforce (a session that fails the learned
	// requirement is deferred).
	Mode        string   `yaml:"mode"`
	MinSessions int      `yaml:"min_sessions"`
	MinDays     int      `yaml:"min_days"`
	MaxAge      Duration `yaml:"max_age"`
	// Exclude lists domains never learned: a name covers itself, a name
	// with a leading dot its subdomains.
	Exclude []string `yaml:"exclude"`
}

func learnDefaults() Learn {
	return Learn{Mode: "report", MinSessions: 20, MinDays: 7, MaxAge: Duration(60 * 24 * time.Hour)}
}

// finishLearn checks the learn section.
func (c *Config) finishLearn() error {
	l := &c.Learn
	switch l.Mode {
	case "off", "report", "enforce":
	default:
		return bad("learn.mode", "%q: off, report or enforce", l.Mode)
	}
	if l.MinSessions < 1 {
		return bad("learn.min_sessions", "%d: must be at least 1", l.MinSessions)
	}
	if l.MinDays < 0 {
		return bad("learn.min_days", "%d: must not be negative", l.MinDays)
	}
	if l.MaxAge <= Duration(time.Duration(l.MinDays)*24*time.Hour) {
		return bad("learn.max_age", "%v: must be longer than min_days (%d days)", time.Duration(l.MaxAge), l.MinDays)
	}
	for i, d := range l.Exclude {
		name, dot := strings.CutPrefix(strings.TrimSuffix(d, "."), ".")
		a, err := idna.Lookup.ToASCII(name)
		if err != nil || !isHostname(a) {
			return bad(fmt.Sprintf("learn.exclude[%d]", i), "%q is not a domain name (or .domain for its subdomains)", d)
		}
		if dot {
			a = "." + a
		}
		l.Exclude[i] = strings.ToLower(a)
	}
	return nil
}
