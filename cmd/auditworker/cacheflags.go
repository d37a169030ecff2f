package main

import (
	"context"
	"errors"

	"github.com/urfave/cli/v2"

	"github.com/auditdb/auditdb/cache"
	"github.com/auditdb/auditdb/client"
)

// cacheFlags name the Redis the Go clients' read cache uses, so that an
// erasure run here also purges the erased values from it.
func cacheFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "redis-url", Usage: "the clients' cache Redis; erasure purges erased values from it", EnvVars: []string{"REDIS_URL"}},
		&cli.StringFlag{Name: "cache-key-prefix", Value: cache.KeyPrefixDefault, Usage: "the clients' cache key prefix", EnvVars: []string{"AUDIT_CACHE_KEY_PREFIX"}},
	}
}

// erasurePurger returns the function for workers.Deps.AfterErasure and a
// closer, both nil without --redis-url.
func erasurePurger(c *cli.Context) (func(context.Context, []string) error, func(), error) {
	url := c.String("redis-url")
	if url == "" {
		return nil, nil, nil
	}
	rdb, err := client.RedisFromURL(url)
	if err != nil {
		return nil, nil, errors.New("redis-url: not a valid Redis URL")
	}
	// L1 off: this process reads nothing; it only purges Redis and tells
	// the clients' L1s through the invalidation channel
	cc, err := cache.New(cache.Config{KeyPrefix: c.String("cache-key-prefix"), L1MaxBytes: -1}, rdb)
	if err != nil {
		_ = rdb.Close()
		return nil, nil, err
	}
	purge := func(ctx context.Context, orgs []string) error { return client.PurgeAfterErasure(ctx, cc, orgs) }
	return purge, func() { _ = cc.Close(); _ = rdb.Close() }, nil
}
