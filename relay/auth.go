package relay

import (
	"errors"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"go.uber.org/zap"
	"golang.org/x/crypto/bcrypt"

	"github.com/caliop/relay/metrics"
)

// AuthMechanisms lists PLAIN and LOGIN when users are configured; go-smtp
// offers them only after STARTTLS (RFC 4954 §4, AllowInsecureAuth off).
func (sess *session) AuthMechanisms() []string {
	if len(sess.s.opts.Users) == 0 {
		return nil
	}
	return []string{sasl.Plain, sasl.Login}
}

// Auth checks credentials against the bcrypt hashes of the configuration,
// within s.opts.AuthLimits.
func (sess *session) Auth(mech string) (sasl.Server, error) {
	if sess.s.authFailures.blocked(sess.remote) {
		// Before any password is checked: no bcrypt time to burn.
		return nil, sess.authFailed("", metrics.AuthRateLimited)
	}
	check := func(user, pass string) error {
		if !sess.s.checkPassword(user, pass) {
			return sess.authFailed(user, metrics.AuthBadCredentials)
		}
		sess.user = user
		return nil
	}
	switch mech {
	case sasl.Plain:
		return sasl.NewPlainServer(func(identity, user, pass string) error {
			if identity != "" && identity != user {
				return smtp.ErrAuthFailed
			}
			return check(user, pass)
		}), nil
	case sasl.Login:
		return &loginServer{check: check}, nil
	}
	return nil, smtp.ErrAuthUnknownMechanism
}

// checkPassword compares pass with user's bcrypt hash; an unknown user is
// compared with a dummy hash of the same cost, so that both take as long.
func (s *Server) checkPassword(user, pass string) bool {
	hash, known := s.opts.Users[user]
	if !known {
		bcrypt.CompareHashAndPassword(s.dummyHash(), []byte(pass))
		return false
	}
	return bcrypt.CompareHashAndPassword([]byte(hash), []byte(pass)) == nil
}

// authFailed counts and logs a failure (the client's address and the
// user name given, never the password), waits as AuthLimits say, and
// returns the reply: 535, or 421 when the connection has had its fill, in
// which case the connection is closed.
func (sess *session) authFailed(user, reason string) error {
	lim := sess.s.opts.AuthLimits
	sess.authFails++
	sess.s.authFailures.add(sess.remote)
	sess.s.opts.Metrics.AuthFailure(reason)
	sess.log.Warn("authentication failed", zap.String("user", user), zap.String("reason", reason), zap.Int("failures", sess.authFails))
	if sess.authFails > lim.PerConnection {
		sess.fc.HangUp(errTooManyAuthFailures(sess.s.opts.Hostname))
		return errTooManyAuthFailures(sess.s.opts.Hostname)
	}
	time.Sleep(lim.delay(sess.authFails))
	if reason == metrics.AuthRateLimited {
		return errAuthRateLimited
	}
	return smtp.ErrAuthFailed
}

// loginServer is the server side of the LOGIN mechanism
// (draft-murchison-sasl-login), which go-sasl only has as a client.
type loginServer struct {
	check func(user, pass string) error
	user  string
	step  int
}

func (l *loginServer) Next(resp []byte) ([]byte, bool, error) {
	l.step++
	switch l.step {
	case 1:
		if len(resp) > 0 { // initial response carries the user name
			l.user, l.step = string(resp), 2
			return []byte("Password:"), false, nil
		}
		return []byte("Username:"), false, nil
	case 2:
		l.user = string(resp)
		return []byte("Password:"), false, nil
	case 3:
		return nil, true, l.check(l.user, string(resp))
	}
	return nil, true, errors.New("unexpected LOGIN response")
}
