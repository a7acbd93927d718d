package relay

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// workerIdle is how long a route worker waits for the next route before
// it ends.
const workerIdle = 10 * time.Second

// workers runs the routes of LMTP transactions on goroutines that outlive
// them, so that the stack a delivery needs (TLS records, the policy
// decision) is grown once per worker rather than once per route. A route
// goes to the worker that went idle last, or else to a new one: Go never
// waits, and the workers are never more than the routes in flight at the
// busiest moment of the last workerIdle.
type workers struct {
	started atomic.Int64 // workers started, in all

	mu   sync.Mutex
	idle []*worker // waiting for a route, the last idle last
}

// worker is one idle worker's inbox; it holds one route at most.
type worker struct{ next chan func() }

func newWorkers() *workers { return &workers{} }

// Go runs f on a worker.
func (w *workers) Go(f func()) {
	w.mu.Lock()
	if n := len(w.idle); n > 0 {
		wk := w.idle[n-1]
		w.idle = w.idle[:n-1]
		w.mu.Unlock()
		wk.next <- f // the inbox is empty: taken off the idle list
		return
	}
	w.mu.Unlock()
	w.started.Add(1)
	go w.run(&worker{next: make(chan func(), 1)}, f)
}

// idleCount is the number of idle workers.
func (w *workers) idleCount() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.idle)
}

func (w *workers) run(wk *worker, f func()) {
	timer := time.NewTimer(workerIdle)
	defer timer.Stop()
	for {
		f()
		w.mu.Lock()
		w.idle = append(w.idle, wk)
		w.mu.Unlock()
		timer.Reset(workerIdle)
		select {
		case f = <-wk.next:
		case <-timer.C:
			w.mu.Lock()
			i := slices.Index(w.idle, wk)
			if i >= 0 {
				w.idle = slices.Delete(w.idle, i, i+1)
			}
			w.mu.Unlock()
			if i >= 0 {
				return
			}
			f = <-wk.next // Go took it off the list: its route is on the way
		}
	}
}
