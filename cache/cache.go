package cache

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Cache is a two-level read cache. It is safe for concurrent use.
type Cache struct {
	cfg      Config
	rdb      redis.UniversalClient // nil: L1 only
	l1       *l1
	flights  flights
	m        metrics
	br       breaker
	instance string // tells this instance's own invalidation messages apart

	pubsub     *redis.PubSub
	subscribed atomic.Bool
	stop       context.CancelFunc
	done       sync.WaitGroup
}

// New returns a cache with the given configuration in front of rdb (a
// *redis.Client, *redis.ClusterClient or other UniversalClient, owned by
// the caller); nil rdb gives an L1-only cache. With Redis, New subscribes to
// the invalidation channel; call Close to stop that.
func New(cfg Config, rdb redis.UniversalClient) (*Cache, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	id := make([]byte, 8)
	_, _ = rand.Read(id) // never fails (crypto/rand documents it)
	c := &Cache{
		cfg: cfg, rdb: rdb, l1: newL1(cfg.L1MaxBytes, cfg.L1TTL),
		instance: hex.EncodeToString(id),
		br:       breaker{pending: map[string]struct{}{}},
		flights:  flights{m: map[string]*flight{}},
	}
	if rdb != nil {
		ctx, cancel := context.WithCancel(context.Background())
		c.stop = cancel
		c.pubsub = rdb.Subscribe(ctx, c.channel())
		c.done.Add(1)
		go c.listen(ctx)
	}
	return c, nil
}

// Close stops listening for invalidations. The Redis client stays open:
// it belongs to the caller.
func (c *Cache) Close() error {
	if c.pubsub == nil {
		return nil
	}
	c.stop()
	err := c.pubsub.Close() // interrupts a blocked Receive
	c.done.Wait()
	if err != nil && !errors.Is(err, redis.ErrClosed) {
		return fmt.Errorf("cache: close subscription: %w", err)
	}
	return nil
}

// Get returns the value of key from L1, else from Redis, else from load,
// storing what it found in the levels above. Concurrent Gets of one key
// share one Redis lookup and one call of load. An error of load is
// returned as is and not cached; Redis errors are never returned (see the
// package documentation).
//
// The load runs with ctx's values and deadline but not its cancellation,
// since other Gets may be waiting on it; a Get whose ctx is cancelled
// returns ctx.Err() at once while waiting for a load, and after at most
// L2Timeout while reading Redis.
//
// The returned slice is shared with the cache and with other callers: read
// it, never modify it (nor the slice load returned). Not copying is what
// makes an L1 hit cost a map lookup rather than a copy of the page. To keep
// decoded values in L1, use Typed.
func (c *Cache) Get(ctx context.Context, key Key, load func(context.Context) ([]byte, error)) ([]byte, error) {
	if v, ok := c.hit(key, bytesView); ok {
		return v.([]byte), nil
	}
	v, err := c.miss(ctx, key, bytesView, func(ctx context.Context) (any, []byte, error) {
		b, err := load(ctx)
		return b, b, err
	})
	if err != nil {
		return nil, err
	}
	return v.([]byte), nil
}

// view says how one kind of value is kept: its name tells L1 entries of
// different kinds of one key apart, decode turns Redis's bytes into it.
// A view that copies keeps nothing of the bytes it decodes, which may then
// be decompressed into a reused buffer.
type view struct {
	name   string
	decode func([]byte) (any, error)
	copies bool
}

// decompressed holds buffers that L2 values are decompressed into for
// views that copy: a page of 100 events is about 20 KB, allocated and
// collected on every L2 hit otherwise.
var decompressed = sync.Pool{New: func() any { return new([]byte) }}

// putDecompressed returns buf to the pool unless it is too large to keep.
func putDecompressed(buf *[]byte) {
	if cap(*buf) <= 1<<20 {
		decompressed.Put(buf)
	}
}

var bytesView = view{decode: func(b []byte) (any, error) { return b, nil }}

// hit looks key up in L1. Get and Typed.Get call it before making the
// closure that miss takes, so that a hit allocates nothing.
func (c *Cache) hit(key Key, vw view) (any, bool) {
	if !c.l1.enabled() || key.id == "" {
		return nil, false
	}
	start := time.Now()
	v, ok := c.l1.get(l1Key{key.id, vw.name}, start)
	c.m.l1.latency.record(time.Since(start))
	if ok {
		c.m.l1.hits.Add(1)
		return v, true
	}
	c.m.l1.misses.Add(1)
	return nil, false
}

// miss is the rest of Get after an L1 miss, for any view; load returns the
// value and its encoding.
//
// The first Get of a key (the flight's leader) reads Redis on its own
// goroutine: running every lookup on a new goroutine and handing the hit
// back, as singleflight's DoChan does, cost about 50 µs per L2 hit on the
// 2-core benchmark machine (BENCHMARKS.md, Enhanced client reads). Only a
// load runs on a goroutine of its own, so that a Get whose ctx ends stops
// waiting while the load goes on for the others. The Redis lookup is not
// interrupted by ctx; L2Timeout bounds it.
func (c *Cache) miss(ctx context.Context, key Key, vw view, load func(context.Context) (any, []byte, error)) (any, error) {
	if key.id == "" {
		return nil, errors.New("cache: get: zero Key, build it with NewKey or QueryKey")
	}
	lk := l1Key{key.id, vw.name}
	ep := c.l1.epochOf(key.org)
	// The epoch in the flight's name keeps a Get that starts after an
	// invalidation from joining a load that started before it.
	name := key.id + vw.name + "/" + strconv.FormatUint(ep.all, 10) + "." + strconv.FormatUint(ep.org, 10)
	f, lead := c.flights.join(name)
	if !lead {
		c.m.coalesced.Add(1)
		return f.wait(ctx)
	}
	fctx := context.WithoutCancel(ctx)
	cancel := context.CancelFunc(func() {})
	if d, ok := ctx.Deadline(); ok {
		fctx, cancel = context.WithDeadline(fctx, d)
	}
	handedOff := false
	defer func() {
		if !handedOff { // a hit, or a panic of the codec: the others must not wait forever
			cancel()
			c.flights.end(name, f)
		}
	}()
	v, hit, gen, inL2 := c.lookup(fctx, key, lk, ep, vw)
	if hit {
		f.settle(v, nil)
		return v, nil
	}
	handedOff = true
	go func() {
		defer c.flights.end(name, f)
		defer cancel()
		f.settle(c.fill(fctx, key, lk, ep, gen, inL2, load))
	}()
	return f.wait(ctx)
}

// lookup reads key from Redis for miss. On a hit it keeps the decoded
// value in L1; otherwise inL2 says whether Redis answered, and gen is the
// generation to store a loaded value under.
func (c *Cache) lookup(ctx context.Context, key Key, lk l1Key, ep epoch, vw view) (v any, hit bool, gen uint64, inL2 bool) {
	probe, ok := c.l2Begin(ctx)
	if !ok {
		return nil, false, 0, false
	}
	start := time.Now()
	var buf *[]byte // nil: the value itself is returned, so never reused
	if vw.copies {
		buf = decompressed.Get().(*[]byte)
		defer putDecompressed(buf)
	}
	b, gen, hit, err := c.l2Lookup(ctx, key, buf)
	if hit {
		if v, err = vw.decode(b); err != nil {
			hit, err = false, fmt.Errorf("cache: decode: %w: %w", errBadValue, err)
		}
	}
	c.m.l2.latency.record(time.Since(start))
	c.l2Done(probe, err)
	switch {
	case err != nil && !errors.Is(err, errBadValue):
		return nil, false, 0, false
	case hit:
		c.m.l2.hits.Add(1)
		c.l1.put(lk, key.org, ep, v, len(b), time.Now(), key.ttl)
		return v, true, gen, true
	default:
		c.m.l2.misses.Add(1)
		return nil, false, gen, true
	}
}

// fill loads key after lookup missed, once per key at a time, and keeps
// the value in L1 and (when inL2) in Redis under gen.
func (c *Cache) fill(ctx context.Context, key Key, lk l1Key, ep epoch, gen uint64, inL2 bool, load func(context.Context) (any, []byte, error)) (any, error) {
	start := time.Now()
	v, b, err := load(ctx)
	c.m.loadLatency.record(time.Since(start))
	c.m.loads.Add(1)
	if err != nil {
		c.m.loadErrors.Add(1)
		return nil, err
	}
	c.l1.put(lk, key.org, ep, v, len(b), time.Now(), key.ttl)
	// The generation already keeps a value loaded before an invalidation
	// from being read; skipping the store when this instance has seen one
	// also keeps it from overwriting a fresh value stored meanwhile.
	if inL2 && c.l1.epochOf(key.org) == ep {
		if probe, ok := c.l2Begin(ctx); ok {
			c.l2Done(probe, c.l2Store(ctx, key, gen, b))
		}
	}
	return v, nil
}

// InvalidateOrganization makes every cached value of organization miss:
// at once on this instance and in Redis, and on other instances when they
// receive the message. While Redis is unavailable the Redis part is kept
// and applied when Redis is back (by this process: values stored in Redis
// before an outage can outlive a process that exits during it, up to
// L2TTL). It returns an error only when ctx ends.
func (c *Cache) InvalidateOrganization(ctx context.Context, organization string) error {
	return c.InvalidateOrganizations(ctx, organization)
}

// InvalidateOrganizations is InvalidateOrganization for several
// organizations at once, with one Redis round trip.
func (c *Cache) InvalidateOrganizations(ctx context.Context, organizations ...string) error {
	orgs := make([]string, len(organizations))
	for i, o := range organizations {
		orgs[i] = orgHash(o)
		c.l1.invalidate(orgs[i])
	}
	if c.rdb == nil || len(orgs) == 0 {
		return ctx.Err()
	}
	probe, ok := c.l2Begin(ctx)
	if !ok {
		c.br.defer_(orgs...)
		return ctx.Err()
	}
	err := c.l2Invalidate(ctx, orgs)
	if err != nil {
		c.br.defer_(orgs...)
	}
	c.l2Done(probe, err)
	// Again: a Get between the first invalidation and the new generation
	// may have read the old value from Redis into L1, and loads started
	// then must not store.
	for _, org := range orgs {
		c.l1.invalidate(org)
	}
	return ctx.Err()
}

// listen drops L1 entries of organizations that other instances
// invalidate, and all of L1 whenever the subscription is (re)made, since
// messages published while it was down are lost.
func (c *Cache) listen(ctx context.Context) {
	defer c.done.Done()
	for {
		// The timeout wakes the loop to probe Redis while the breaker is
		// open, since reads may be too few to do it.
		msg, err := c.pubsub.ReceiveTimeout(ctx, c.cfg.RetryMin)
		if ctx.Err() != nil {
			return
		}
		var netErr net.Error
		if errors.As(err, &netErr) && netErr.Timeout() && c.subscribed.Load() {
			c.recover(ctx, false)
			continue
		}
		if err != nil {
			if c.subscribed.Swap(false) {
				c.cfg.Logger.WarnContext(ctx, "cache: invalidation channel lost", slog.Any("error", err))
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(c.cfg.RetryMin):
			}
			// A refused SUBSCRIBE (NOAUTH, say) leaves a connection that is
			// up but subscribed to nothing, which go-redis does not redo by
			// itself; on a dead connection this reconnects and subscribes.
			_ = c.pubsub.Subscribe(ctx, c.channel())
			continue
		}
		switch m := msg.(type) {
		case *redis.Subscription:
			c.l1.flush()
			c.subscribed.Store(true)
			c.recover(ctx, true)
		case *redis.Message:
			sender, org, ok := strings.Cut(m.Payload, " ")
			if ok && sender != c.instance {
				c.l1.invalidate(org)
			}
		}
	}
}

// recover probes Redis while the breaker is open, so the cache resumes
// (and applies the invalidations it kept) without waiting for a read to
// probe; now probes without waiting for the backoff, for when the
// subscription has just come back.
func (c *Cache) recover(ctx context.Context, now bool) {
	c.br.mu.Lock()
	if !c.br.open {
		c.br.mu.Unlock()
		return
	}
	if now {
		c.br.retryAt = time.Time{}
	}
	c.br.mu.Unlock()
	probe, ok := c.l2Begin(ctx)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.L2Timeout)
	defer cancel()
	c.l2Done(probe, c.rdb.Ping(ctx).Err())
}
