package cache

import (
	"context"
	"fmt"
	"sync/atomic"

	"github.com/redis/go-redis/v9"
)

// purgeScanCount is SCAN's COUNT hint: keys examined per round trip.
const purgeScanCount = 1000

// PurgeOrganization invalidates organization (see InvalidateOrganization)
// and then deletes its values from Redis, which invalidation alone leaves
// there until L2TTL expires them. It is for GDPR erasure, when erased values
// must not linger anywhere: it walks the keyspace with SCAN (never KEYS), on
// every master of a cluster, so it costs time in proportion to the
// keyspace. Unlike InvalidateOrganization it returns Redis errors: the
// caller must know whether the values are gone. It returns the number of
// values deleted.
func (c *Cache) PurgeOrganization(ctx context.Context, organization string) (int64, error) {
	if err := c.InvalidateOrganization(ctx, organization); err != nil {
		return 0, err
	}
	if c.rdb == nil {
		return 0, nil
	}
	match := c.cfg.KeyPrefix + "q:" + orgHash(organization) + ":*"
	var deleted atomic.Int64
	purge := func(ctx context.Context, node redis.Cmdable) error {
		var cursor uint64
		for {
			keys, next, err := node.Scan(ctx, cursor, match, purgeScanCount).Result()
			if err != nil {
				return err
			}
			// one key per UNLINK: in a cluster an organization's keys sit
			// in different slots
			for _, k := range keys {
				n, err := node.Unlink(ctx, k).Result()
				if err != nil {
					return err
				}
				deleted.Add(n)
			}
			if cursor = next; cursor == 0 {
				return nil
			}
		}
	}
	var err error
	if cc, ok := c.rdb.(*redis.ClusterClient); ok {
		err = cc.ForEachMaster(ctx, func(ctx context.Context, node *redis.Client) error { return purge(ctx, node) })
	} else {
		err = purge(ctx, c.rdb)
	}
	if err != nil {
		return deleted.Load(), fmt.Errorf("cache: purge: %w", err)
	}
	return deleted.Load(), nil
}
