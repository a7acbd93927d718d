package server

import (
	"time"

	"go.uber.org/zap"

	"github.com/caliop/relay/config"
	"github.com/caliop/relay/learned"
	"github.com/caliop/relay/metrics"
	"github.com/caliop/relay/store"
)

// newLearner makes the learner of cfg.Learn on st, nil with learn.mode
// off.
func newLearner(cfg *config.Config, st store.Store, m *metrics.Metrics, log *zap.Logger) *learned.Learner {
	l := cfg.Learn
	if l.Mode == "off" {
		return nil
	}
	return learned.New(learned.Config{
		Store: st,
		Rules: learned.Rules{
			MinSessions: l.MinSessions,
			MinDays:     time.Duration(l.MinDays) * 24 * time.Hour,
			MaxAge:      time.Duration(l.MaxAge),
		},
		Exclude: l.Exclude,
		Log:     log,
	})
}
