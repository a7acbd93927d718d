package relay

import (
	"sync/atomic"
	"time"
)

// workerIdle is how long a route worker waits for the next route before
// it ends.
const workerIdle = 10 * time.Second

// workers runs the routes of LMTP transactions on goroutines that outlive
// them, so that the stack a delivery needs (TLS records, the policy
// decision) is grown once per worker rather than once per route. A route
// goes to an idle worker, or else to a new one: Go never waits, and the
// workers are never more than the routes in flight at the busiest moment
// of the last workerIdle.
type workers struct {
	jobs    chan func()
	started atomic.Int64 // workers started, in all
	waiting atomic.Int32 // workers waiting for a route now
}

func newWorkers() *workers { return &workers{jobs: make(chan func())} }

// Go runs f on a worker.
func (w *workers) Go(f func()) {
	select {
	case w.jobs <- f:
	default:
		w.started.Add(1)
		go w.run(f)
	}
}

func (w *workers) run(f func()) {
	idle := time.NewTimer(workerIdle)
	defer idle.Stop()
	for {
		f()
		idle.Reset(workerIdle)
		w.waiting.Add(1)
		select {
		case f = <-w.jobs:
			w.waiting.Add(-1)
		case <-idle.C:
			w.waiting.Add(-1)
			return
		}
	}
}
