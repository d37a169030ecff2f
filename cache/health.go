package cache

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"
)

// HealthStatus is the state of a Cache.
type HealthStatus string

// States of a Cache.
const (
	// HealthOK: both levels work.
	HealthOK HealthStatus = "ok"
	// HealthDegraded: Redis is unavailable (reads go to the loader) or the
	// invalidation channel is down.
	HealthDegraded HealthStatus = "degraded"
	// HealthL1Only: the cache was made without Redis.
	HealthL1Only HealthStatus = "l1_only"
)

// Health is a Cache's state, for health endpoints.
type Health struct {
	Status HealthStatus
	// Reason says why the cache is not ok.
	Reason string
	// Since is when Redis became unavailable (degraded by Redis errors).
	Since time.Time
}

// Health returns the cache's state.
func (c *Cache) Health() Health {
	if c.rdb == nil {
		return Health{Status: HealthL1Only, Reason: "no Redis configured"}
	}
	c.br.mu.Lock()
	open, since, reason := c.br.open, c.br.since, c.br.reason
	c.br.mu.Unlock()
	if open {
		return Health{Status: HealthDegraded, Reason: "redis unavailable: " + reason, Since: since}
	}
	if !c.subscribed.Load() {
		return Health{Status: HealthDegraded, Reason: "invalidation channel not subscribed"}
	}
	return Health{Status: HealthOK}
}

// breaker keeps Redis calls away while Redis fails, so that reads do not
// each wait for a timeout, and remembers the invalidations that could not
// reach it.
type breaker struct {
	mu      sync.Mutex
	open    bool
	probing bool
	retryAt time.Time
	backoff time.Duration
	since   time.Time
	reason  string
	pending map[string]struct{} // org hashes whose generation must change
}

func (b *breaker) defer_(orgs ...string) {
	b.mu.Lock()
	for _, org := range orgs {
		b.pending[org] = struct{}{}
	}
	b.mu.Unlock()
}

// l2Begin says whether to call Redis now. While the breaker is open, one
// call after the backoff is let through as the probe. Invalidations kept
// while Redis failed are applied first, since values stored before them
// must not be read.
func (c *Cache) l2Begin(ctx context.Context) (probe, ok bool) {
	if c.rdb == nil {
		return false, false
	}
	b := &c.br
	b.mu.Lock()
	if b.open {
		if b.probing || time.Now().Before(b.retryAt) {
			b.mu.Unlock()
			return false, false
		}
		b.probing, probe = true, true
	}
	var orgs []string
	for org := range b.pending {
		orgs = append(orgs, org)
	}
	b.mu.Unlock()
	if len(orgs) > 0 {
		if err := c.l2Invalidate(ctx, orgs); err != nil {
			c.l2Done(probe, err)
			return false, false
		}
		b.mu.Lock()
		for _, org := range orgs {
			delete(b.pending, org)
		}
		b.mu.Unlock()
	}
	return probe, true
}

// l2Done records the outcome of a Redis call that l2Begin let through.
func (c *Cache) l2Done(probe bool, err error) {
	if err != nil {
		c.m.l2.errors.Add(1)
	}
	if errors.Is(err, errBadValue) {
		err = nil // Redis answered; the value was garbage and gets replaced
	}
	b := &c.br
	b.mu.Lock()
	defer b.mu.Unlock()
	now := time.Now()
	switch {
	case err == nil && probe:
		b.open, b.probing = false, false
		c.cfg.Logger.Info("cache: redis available again", slog.Duration("down_for", now.Sub(b.since)))
	case err != nil && probe:
		b.probing = false
		b.backoff = min(2*b.backoff, c.cfg.RetryMax)
		b.retryAt = now.Add(b.backoff)
		b.reason = err.Error()
	case err != nil && !b.open:
		b.open, b.since, b.reason = true, now, err.Error()
		b.backoff = c.cfg.RetryMin
		b.retryAt = now.Add(b.backoff)
		c.cfg.Logger.Warn("cache: redis unavailable, reading through to the loader",
			slog.Any("error", err), slog.Duration("retry_in", b.backoff))
	}
}
