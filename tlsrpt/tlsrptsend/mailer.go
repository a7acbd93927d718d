package tlsrptsend

import (
	"bytes"
	"context"
	"fmt"
	"io"

	"github.com/caliop/relay/address"
	"github.com/caliop/relay/delivery"
	"github.com/caliop/relay/policy"
)

// Planner plans delivery to a domain as if it published no policy;
// *policy.Engine is one.
type Planner interface {
	PlanWithoutPolicies(ctx context.Context, domain string) (policy.Plan, error)
}

// Mailer delivers report messages through Caliop's outbound path:
// under the plan without published policies, as "TLS-Required: No" asks
// (RFC 8689 §5; TLS is still required), by a copy of d that records no
// TLS-RPT outcome, so that reports are not counted in reports
// (RFC 8460 §5.3).
func Mailer(engine Planner, d *delivery.Deliverer) SendMail {
	quiet := *d
	quiet.Report = nil
	return func(ctx context.Context, from, to string, msg []byte) error {
		// The rua comes from DNS: parsed like any address from outside.
		rcpt, err := address.Parse(to, address.Recipient, false)
		if err != nil {
			return fmt.Errorf("report address %q: %w", to, err)
		}
		if rcpt.IsLiteral() {
			return fmt.Errorf("report address %q: address literals are not relayed", to)
		}
		sender, err := address.Parse(from, address.Sender, false)
		if err != nil {
			return fmt.Errorf("report sender %q: %w", from, err)
		}
		plan, err := engine.PlanWithoutPolicies(ctx, rcpt.Domain)
		if err != nil {
			return err
		}
		res := quiet.Deliver(ctx, delivery.Request{
			Plan:     plan,
			Envelope: delivery.Envelope{From: sender, Size: int64(len(msg))},
			To:       []address.Address{rcpt},
			Body:     byteBody(msg),
		})
		if r := res.Replies[0]; r.Code != 250 {
			return r
		}
		return nil
	}
}

// byteBody is a message held in memory, as delivery.Body.
type byteBody []byte

func (b byteBody) Reader() io.Reader { return bytes.NewReader(b) }
func (b byteBody) Size() int64       { return int64(len(b)) }
