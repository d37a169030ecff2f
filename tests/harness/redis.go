package harness

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/auditdb/auditdb/internal/embeddedredis"
)

// Redis is a Redis server for tests.
type Redis struct {
	URL  string
	stop func()
}

// SharedRedis returns the Redis that Main started (Options.Redis).
func SharedRedis() *Redis { return redis }

// StartRedis provides a Redis: AUDIT_TEST_REDIS_URL, a Docker daemon, or a
// local redis-server on a free loopback port with persistence off.
func StartRedis(ctx context.Context) (*Redis, error) {
	if u := os.Getenv("AUDIT_TEST_REDIS_URL"); u != "" {
		return &Redis{URL: u, stop: func() {}}, nil
	}
	if u, stop, ok := dockerRedis(ctx); ok {
		return &Redis{URL: u, stop: stop}, nil
	}
	srv, err := embeddedredis.Start(ctx)
	if errors.Is(err, embeddedredis.ErrNotInstalled) {
		return nil, fmt.Errorf("no Redis: set AUDIT_TEST_REDIS_URL or install redis-server: %w", err)
	}
	if err != nil {
		return nil, err
	}
	return &Redis{URL: srv.URL, stop: srv.Stop}, nil
}

// Stop stops what StartRedis started.
func (r *Redis) Stop() { r.stop() }
