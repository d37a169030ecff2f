package cache

import (
	"context"
	"errors"
	"sync"
)

// flights lets concurrent Gets of one key share one Redis lookup and one
// load: the first to join a flight leads it and ends it; the others wait
// for its result.
type flights struct {
	mu sync.Mutex
	m  map[string]*flight
}

type flight struct {
	done    chan struct{} // closed when the result is final
	val     any
	err     error
	settled bool // val and err were set
}

var errFlightAbandoned = errors.New("cache: the Get leading this read panicked")

// join returns the flight named name, starting it (lead is true) when there
// is none. The leader must call end.
func (g *flights) join(name string) (f *flight, lead bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if f := g.m[name]; f != nil {
		return f, false
	}
	f = &flight{done: make(chan struct{})}
	g.m[name] = f
	return f, true
}

// settle sets f's result; the leader then calls end.
func (f *flight) settle(v any, err error) { f.val, f.err, f.settled = v, err, true }

// end publishes f's result to its waiters; a flight ended unsettled was
// abandoned by a panic.
func (g *flights) end(name string, f *flight) {
	if !f.settled {
		f.err = errFlightAbandoned
	}
	g.mu.Lock()
	delete(g.m, name)
	g.mu.Unlock()
	close(f.done)
}

// wait returns f's result, or ctx's error if ctx ends first.
func (f *flight) wait(ctx context.Context) (any, error) {
	select {
	case <-f.done:
		return f.val, f.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
