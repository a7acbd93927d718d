package relay

import (
	"errors"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"go.uber.org/zap"
	"golang.org/x/crypto/bcrypt"
)

// AuthMechanisms lists PLAIN and LOGIN when users are configured; go-smtp
// offers them only after STARTTLS (RFC 4954 §4, AllowInsecureAuth off).
func (sess *session) AuthMechanisms() []string {
	if len(sess.s.opts.Users) == 0 {
		return nil
	}
	return []string{sasl.Plain, sasl.Login}
}

// Auth checks credentials against the bcrypt hashes of the configuration.
func (sess *session) Auth(mech string) (sasl.Server, error) {
	check := func(user, pass string) error {
		hash, ok := sess.s.opts.Users[user]
		if !ok || bcrypt.CompareHashAndPassword([]byte(hash), []byte(pass)) != nil {
			sess.log.Warn("authentication failed", zap.String("user", user))
			return smtp.ErrAuthFailed
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
