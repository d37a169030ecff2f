package cache

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"

	"github.com/klauspost/compress/s2"
	"github.com/redis/go-redis/v9"
)

// An L2 value is a format byte, the 8-byte generation token it was stored
// under, then the payload. Format 0 is never written, so a value that is
// not ours (or truncated) is not mistaken for an empty one.
const (
	formatRaw byte = 1
	formatS2  byte = 2
	l2Header       = 9
)

var errBadValue = errors.New("cache: redis value not in the cache's format")

func (c *Cache) genKey(org string) string { return c.cfg.KeyPrefix + "gen:" + org }
func (c *Cache) valueKey(k Key) string    { return c.cfg.KeyPrefix + "q:" + k.org + ":" + k.id }
func (c *Cache) channel() string          { return c.cfg.KeyPrefix + "invalidate" }

// encode frames value for Redis, compressing it when it is large and that
// helps.
func (c *Cache) encode(gen uint64, value []byte) ([]byte, bool) {
	if c.cfg.CompressAbove >= 0 && len(value) > c.cfg.CompressAbove {
		if z := s2.Encode(nil, value); len(z) < len(value) {
			return frame(formatS2, gen, z), true
		}
	}
	return frame(formatRaw, gen, value), false
}

func frame(format byte, gen uint64, payload []byte) []byte {
	b := make([]byte, l2Header, l2Header+len(payload))
	b[0] = format
	binary.BigEndian.PutUint64(b[1:], gen)
	return append(b, payload...)
}

// decode returns the generation and the payload of an L2 value. A
// compressed payload is decompressed into *buf (grown as needed) unless buf
// is nil.
func decode(b []byte, buf *[]byte) (uint64, []byte, error) {
	if len(b) < l2Header {
		return 0, nil, errBadValue
	}
	gen := binary.BigEndian.Uint64(b[1:l2Header])
	switch b[0] {
	case formatRaw:
		return gen, b[l2Header:], nil
	case formatS2:
		var dst []byte
		if buf != nil {
			dst = (*buf)[:cap(*buf)]
		}
		v, err := s2.Decode(dst, b[l2Header:])
		if err != nil {
			return 0, nil, fmt.Errorf("%w: %w", errBadValue, err)
		}
		if buf != nil && cap(v) > cap(*buf) {
			*buf = v[:0]
		}
		return gen, v, nil
	default:
		return 0, nil, errBadValue
	}
}

// l2Lookup reads the organization's generation and the value in one round
// trip; a compressed value is decompressed into *buf as decode does. hit
// is true when the value exists and was stored under the current
// generation. A missing generation is created, so the caller always gets
// the generation to store a loaded value under; so does an error wrapping
// errBadValue (Redis held something not in our format).
func (c *Cache) l2Lookup(ctx context.Context, k Key, buf *[]byte) (value []byte, gen uint64, hit bool, err error) {
	// The caller's cancellation must not pass for a Redis failure.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.cfg.L2Timeout)
	defer cancel()
	pipe := c.rdb.Pipeline()
	genCmd := pipe.Get(ctx, c.genKey(k.org))
	valCmd := pipe.Get(ctx, c.valueKey(k))
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, 0, false, fmt.Errorf("cache: redis get: %w", err)
	}
	for _, cmd := range []*redis.StringCmd{genCmd, valCmd} {
		if err := cmd.Err(); err != nil && !errors.Is(err, redis.Nil) {
			return nil, 0, false, fmt.Errorf("cache: redis get: %w", err)
		}
	}
	if errors.Is(genCmd.Err(), redis.Nil) {
		gen, err = c.createGen(ctx, k.org)
		return nil, gen, false, err
	}
	gen, err = strconv.ParseUint(genCmd.Val(), 10, 64)
	if err != nil {
		// Not ours: replace it, which also invalidates the organization.
		gen = newGen()
		if err := c.rdb.Set(ctx, c.genKey(k.org), gen, 0).Err(); err != nil {
			return nil, 0, false, fmt.Errorf("cache: redis set generation: %w", err)
		}
		return nil, gen, false, fmt.Errorf("cache: redis generation: %w", errBadValue)
	}
	if errors.Is(valCmd.Err(), redis.Nil) {
		return nil, gen, false, nil
	}
	raw, _ := valCmd.Bytes()
	stored, value, err := decode(raw, buf)
	if err != nil {
		return nil, gen, false, err // the loaded value will replace it
	}
	if stored != gen {
		return nil, gen, false, nil
	}
	return value, gen, true, nil
}

// createGen sets a first generation for org unless another instance just
// did, and returns the one in force.
func (c *Cache) createGen(ctx context.Context, org string) (uint64, error) {
	gen := newGen()
	ok, err := c.rdb.SetNX(ctx, c.genKey(org), gen, 0).Result()
	if err != nil {
		return 0, fmt.Errorf("cache: redis set generation: %w", err)
	}
	if ok {
		return gen, nil
	}
	s, err := c.rdb.Get(ctx, c.genKey(org)).Result()
	if err != nil {
		return 0, fmt.Errorf("cache: redis get generation: %w", err)
	}
	gen, err = strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("cache: redis generation: %w", errBadValue)
	}
	return gen, nil
}

func (c *Cache) l2Store(ctx context.Context, k Key, gen uint64, value []byte) error {
	// The caller's cancellation must not pass for a Redis failure.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.cfg.L2Timeout)
	defer cancel()
	b, compressed := c.encode(gen, value)
	ttl := c.cfg.L2TTL
	if k.ttl > 0 {
		ttl = k.ttl
	}
	// A value stored under a generation that was replaced meanwhile can
	// never be read, but it would sit in Redis until L2TTL, and
	// PurgeOrganization promises that an erased organization's values are
	// gone. Reading the generation after the store closes that gap: if
	// the replacement came first, this deletes the value; if it came
	// after, the purge that follows it finds the value. One server runs a
	// pipeline's commands in order, so there the read rides with the store;
	// elsewhere (a cluster, a ring) the two keys may live on different
	// nodes, and the read waits for the store's reply.
	var setCmd *redis.StatusCmd
	var genCmd *redis.StringCmd
	if single, ok := c.rdb.(*redis.Client); ok {
		pipe := single.Pipeline()
		setCmd = pipe.Set(ctx, c.valueKey(k), b, ttl)
		genCmd = pipe.Get(ctx, c.genKey(k.org))
		_, _ = pipe.Exec(ctx) // each command carries its error
	} else {
		setCmd = c.rdb.Set(ctx, c.valueKey(k), b, ttl)
		if setCmd.Err() == nil {
			genCmd = c.rdb.Get(ctx, c.genKey(k.org))
		}
	}
	if err := setCmd.Err(); err != nil {
		return fmt.Errorf("cache: redis set: %w", err)
	}
	c.m.l2.written.Add(int64(len(b)))
	if compressed {
		c.m.l2.compressed.Add(1)
	}
	now, err := genCmd.Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("cache: redis get generation: %w", err)
	}
	if now != strconv.FormatUint(gen, 10) {
		if err := c.rdb.Unlink(ctx, c.valueKey(k)).Err(); err != nil {
			return fmt.Errorf("cache: redis unlink: %w", err)
		}
	}
	return nil
}

// l2Invalidate gives each organization a new generation and tells the
// other instances.
func (c *Cache) l2Invalidate(ctx context.Context, orgs []string) error {
	// The caller's cancellation must not pass for a Redis failure.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.cfg.L2Timeout)
	defer cancel()
	pipe := c.rdb.Pipeline()
	for _, org := range orgs {
		pipe.Set(ctx, c.genKey(org), newGen(), 0)
		pipe.Publish(ctx, c.channel(), c.instance+" "+org)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("cache: redis invalidate: %w", err)
	}
	return nil
}

// newGen draws a generation token. Random rather than a counter: a counter
// recreated from zero after Redis lost it could repeat a generation whose
// values are still stored.
func newGen() uint64 { return rand.Uint64() }
