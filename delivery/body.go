package delivery

import (
	"io"

	"github.com/caliop/relay/internal/smtpconn"
	"github.com/emersion/go-smtp"
)

// body sends the message after DATA's 354 and reads the final reply.
func (c *client) body(r io.Reader) (*smtp.SMTPError, error) {
	return c.ended(c.Body(r))
}

// data sends the message by BDAT or DATA (smtpconn.Conn.Data) and returns
// the last reply and the step it answered.
func (c *client) data(body Body) (*smtp.SMTPError, string, error) {
	r, step, err := c.Data(body.Reader(), body.Size())
	if step != smtpconn.StepDATA {
		r, err = c.ended(r, err)
	}
	return r, step, err
}

// ended counts a message sent and, once its reply is read, ends the
// transaction whatever the reply says (RFC 5321 §4.1.1.4; RFC 3030 §2
// for BDAT LAST).
func (c *client) ended(r *smtp.SMTPError, err error) (*smtp.SMTPError, error) {
	c.sent++
	if err == nil {
		c.dirty = false
	}
	return r, err
}
