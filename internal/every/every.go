// Package every runs background passes on a ticker.
package every

import (
	"context"
	"time"
)

// Run calls pass at once and then every interval until ctx ends.
func Run(ctx context.Context, interval time.Duration, pass func(context.Context)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		pass(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
