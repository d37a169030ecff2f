package cache

import (
	"fmt"
	"log/slog"
	"time"
)

// Defaults of Config.
const (
	L1MaxBytesDefault    = 64 << 20
	L1TTLDefault         = 30 * time.Second
	L2TTLDefault         = 5 * time.Minute
	KeyPrefixDefault     = "auditdb:"
	CompressAboveDefault = 1024
	L2TimeoutDefault     = 250 * time.Millisecond
	RetryMinDefault      = 500 * time.Millisecond
	RetryMaxDefault      = 30 * time.Second
)

// Config configures a Cache. The zero value means all defaults.
type Config struct {
	// L1MaxBytes bounds the in-process level: values, keys and a fixed
	// bookkeeping overhead per entry; the least recently used entries go
	// first. Negative turns L1 off (every read then asks Redis, which
	// makes reads consistent across instances at once). Defaults to 64 MiB.
	L1MaxBytes int64
	// L1TTL is how long an L1 entry lives. It also bounds how stale another
	// instance's L1 can be when the invalidation channel is broken.
	// Defaults to 30s.
	L1TTL time.Duration
	// L2TTL is how long a value lives in Redis. Defaults to 5m.
	L2TTL time.Duration
	// KeyPrefix starts every Redis key and the invalidation channel, so
	// several deployments can share a Redis. Defaults to "auditdb:".
	KeyPrefix string
	// CompressAbove is the size in bytes above which values are stored in
	// Redis compressed with S2 (kept raw if that does not make them
	// smaller). Negative never compresses. Defaults to 1024.
	CompressAbove int
	// L2Timeout bounds each Redis call. Defaults to 250ms.
	L2Timeout time.Duration
	// RetryMin is how long Redis is left alone after a failure before one
	// call probes it again; the pause doubles on each failed probe up to
	// RetryMax. Defaults to 500ms.
	RetryMin time.Duration
	// RetryMax caps the pause between probes. Defaults to 30s.
	RetryMax time.Duration
	// Logger receives state changes (Redis lost, Redis back). Defaults to
	// slog.Default().
	Logger *slog.Logger
}

// WithDefaults returns c with zero fields set to their defaults.
func (c Config) WithDefaults() Config {
	if c.L1MaxBytes == 0 {
		c.L1MaxBytes = L1MaxBytesDefault
	}
	if c.L1TTL == 0 {
		c.L1TTL = L1TTLDefault
	}
	if c.L2TTL == 0 {
		c.L2TTL = L2TTLDefault
	}
	if c.KeyPrefix == "" {
		c.KeyPrefix = KeyPrefixDefault
	}
	if c.CompressAbove == 0 {
		c.CompressAbove = CompressAboveDefault
	}
	if c.L2Timeout == 0 {
		c.L2Timeout = L2TimeoutDefault
	}
	if c.RetryMin == 0 {
		c.RetryMin = RetryMinDefault
	}
	if c.RetryMax == 0 {
		c.RetryMax = RetryMaxDefault
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Validate checks a Config after WithDefaults.
func (c Config) Validate() error {
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"L1TTL", c.L1TTL}, {"L2TTL", c.L2TTL}, {"L2Timeout", c.L2Timeout},
		{"RetryMin", c.RetryMin}, {"RetryMax", c.RetryMax},
	} {
		if d.v < 0 {
			return fmt.Errorf("cache: Config.%s: must not be negative (%s)", d.name, d.v)
		}
	}
	if c.L2TTL < time.Millisecond {
		return fmt.Errorf("cache: Config.L2TTL: must be at least 1ms, Redis's resolution (%s)", c.L2TTL)
	}
	if c.RetryMax < c.RetryMin {
		return fmt.Errorf("cache: Config.RetryMax: must be at least RetryMin (%s < %s)", c.RetryMax, c.RetryMin)
	}
	return nil
}
