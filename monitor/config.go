package monitor

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace"
)

// SlowQueryThresholdDefault is the one slow-query threshold default: of
// Config.SlowQueryThreshold, AlertConfig.SlowQuery and
// OptimizeConfig.SlowQuery, and of the CLI's --slow-query-threshold.
const SlowQueryThresholdDefault time.Duration = time.Second

// Defaults of Config, applied by Config.WithDefaults to fields left zero.
const (
	SampleSizeDefault                       = 1024
	SlowQueryLogSizeDefault                 = 100
	CheckTimeoutDefault       time.Duration = 5 * time.Second
	PartitionsAheadMinDefault               = 2
	SealLagMaxDefault         time.Duration = 15 * time.Minute
	VerificationMaxAgeDefault time.Duration = 25 * time.Hour
)

// The environment variables ConfigFromEnv reads.
const (
	EnvEnabled            = "AUDIT_MONITORING_ENABLED"
	EnvSlowQueryThreshold = "AUDIT_SLOW_QUERY_THRESHOLD" // milliseconds; ParseSlowQueryThreshold
)

// ParseSlowQueryThreshold parses a slow-query threshold as written in
// AUDIT_SLOW_QUERY_THRESHOLD and --slow-query-threshold: a whole number of
// milliseconds, at least 1. Its errors do not name the variable; callers
// prefix it.
func ParseSlowQueryThreshold(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	ms, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		var numErr *strconv.NumError
		if errors.As(err, &numErr) && errors.Is(numErr.Err, strconv.ErrRange) {
			return 0, fmt.Errorf("out of range (%q)", s)
		}
		return 0, fmt.Errorf("must be a whole number of milliseconds (%q)", s)
	}
	if ms < 1 {
		return 0, fmt.Errorf("must be at least 1 millisecond (%d)", ms)
	}
	if ms > int64(math.MaxInt64/time.Millisecond) {
		return 0, fmt.Errorf("out of range (%q)", s)
	}
	return time.Duration(ms) * time.Millisecond, nil
}

// Config configures a Monitor. Fields left zero take their defaults.
type Config struct {
	// Enabled says whether the application should monitor at all (the
	// enhanced client attaches a Monitor only when it is set); a Monitor
	// made with it unset works all the same. Defaults to false; ConfigFromEnv
	// reads AUDIT_MONITORING_ENABLED.
	Enabled bool

	// SlowQueryThreshold: queries that take longer are logged (at Warn) and
	// kept in the slow-query log. Defaults to 1s; ConfigFromEnv reads
	// AUDIT_SLOW_QUERY_THRESHOLD in milliseconds.
	SlowQueryThreshold time.Duration

	// Logger receives the slow-query log. Defaults to slog.Default().
	Logger *slog.Logger

	// TracerProvider makes the spans of Tracer. Defaults to the global
	// provider (otel.GetTracerProvider()), a no-op until the application
	// installs one.
	TracerProvider trace.TracerProvider

	// SampleSize is how many of the latest query durations the average and
	// percentiles are computed over. Defaults to 1024.
	SampleSize int

	// SlowQueryLogSize is how many of the latest slow queries SlowQueries
	// returns. Defaults to 100.
	SlowQueryLogSize int

	// CheckTimeout bounds each health check. Defaults to 5s.
	CheckTimeout time.Duration

	// PartitionsAheadMin is how many future monthly partitions must exist
	// for the partitions check to be healthy. Defaults to 2.
	PartitionsAheadMin int

	// SealLagMax is how old the oldest row not yet covered by an HMAC
	// checkpoint may be before the seal check is degraded. Defaults to 15m.
	SealLagMax time.Duration

	// VerificationMaxAge is how long ago the newest finished verification
	// run may have ended before the verification check is degraded.
	// Defaults to 25h (a daily run, with an hour of slack).
	VerificationMaxAge time.Duration
}

// WithDefaults returns c with every field left zero set to its default.
func (c Config) WithDefaults() Config {
	if c.SlowQueryThreshold == 0 {
		c.SlowQueryThreshold = SlowQueryThresholdDefault
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.TracerProvider == nil {
		c.TracerProvider = otel.GetTracerProvider()
	}
	if c.SampleSize == 0 {
		c.SampleSize = SampleSizeDefault
	}
	if c.SlowQueryLogSize == 0 {
		c.SlowQueryLogSize = SlowQueryLogSizeDefault
	}
	if c.CheckTimeout == 0 {
		c.CheckTimeout = CheckTimeoutDefault
	}
	if c.PartitionsAheadMin == 0 {
		c.PartitionsAheadMin = PartitionsAheadMinDefault
	}
	if c.SealLagMax == 0 {
		c.SealLagMax = SealLagMaxDefault
	}
	if c.VerificationMaxAge == 0 {
		c.VerificationMaxAge = VerificationMaxAgeDefault
	}
	return c
}

// Validate checks c with its defaults applied. Its errors name the field
// and the rule.
func (c Config) Validate() error {
	c = c.WithDefaults()
	positive := []struct {
		name string
		d    time.Duration
	}{
		{"SlowQueryThreshold", c.SlowQueryThreshold},
		{"CheckTimeout", c.CheckTimeout},
		{"SealLagMax", c.SealLagMax},
		{"VerificationMaxAge", c.VerificationMaxAge},
	}
	for _, p := range positive {
		if p.d < 0 {
			return fmt.Errorf("monitor: %s: must be positive (%s)", p.name, p.d)
		}
	}
	counts := []struct {
		name string
		n    int
	}{
		{"SampleSize", c.SampleSize},
		{"SlowQueryLogSize", c.SlowQueryLogSize},
		{"PartitionsAheadMin", c.PartitionsAheadMin},
	}
	for _, p := range counts {
		if p.n < 0 {
			return fmt.Errorf("monitor: %s: must be positive (%d)", p.name, p.n)
		}
	}
	return nil
}

// ConfigFromEnv reads AUDIT_MONITORING_ENABLED (true/false, 1/0) and
// AUDIT_SLOW_QUERY_THRESHOLD (whole milliseconds, at least 1) into a
// Config; unset or empty variables leave their field zero. Errors name the
// variable.
func ConfigFromEnv() (Config, error) {
	return configFromEnv(os.Getenv)
}

func configFromEnv(getenv func(string) string) (Config, error) {
	var c Config
	if s := strings.TrimSpace(getenv(EnvEnabled)); s != "" {
		on, err := strconv.ParseBool(s)
		if err != nil {
			return Config{}, fmt.Errorf("monitor: %s: must be true or false (%q)", EnvEnabled, s)
		}
		c.Enabled = on
	}
	if s := strings.TrimSpace(getenv(EnvSlowQueryThreshold)); s != "" {
		d, err := ParseSlowQueryThreshold(s)
		if err != nil {
			return Config{}, fmt.Errorf("monitor: %s: %w", EnvSlowQueryThreshold, err)
		}
		c.SlowQueryThreshold = d
	}
	return c, nil
}
