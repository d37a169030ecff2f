package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/auditdb/auditdb/cache"
	"github.com/auditdb/auditdb/internal/subject"
	"github.com/auditdb/auditdb/monitor"
)

// The environment variables EnhancedConfigFromEnv reads, besides those of
// ConfigFromEnv and monitor.ConfigFromEnv.
const (
	EnvRedisURL     = "REDIS_URL"
	EnvGDPREnabled  = "AUDIT_GDPR_ENABLED"
	EnvHIPAAEnabled = "AUDIT_HIPAA_ENABLED"
)

// EnhancedConfig configures the enhanced client: a configured client plus
// the read cache, monitoring and the compliance switches.
type EnhancedConfig struct {
	Config

	// RedisURL is the cache's second level: redis://[user:pass@]host:port/db,
	// or a cluster as redis://host1:port?addr=host2:port&addr=host3:port.
	// Defaults to empty: the cache is in-process only; EnhancedConfigFromEnv
	// reads REDIS_URL.
	RedisURL string
	// Redis, when set, is used instead of RedisURL (any go-redis client,
	// e.g. a *redis.ClusterClient); the caller closes it. Defaults to nil.
	Redis redis.UniversalClient
	// Cache configures the read cache. Defaults to cache.Config's defaults.
	Cache cache.Config
	// CacheDisabled turns the read cache off. Defaults to false.
	CacheDisabled bool

	// Monitor configures monitoring: with Monitor.Enabled every statement
	// is timed and traced and slow ones logged. Defaults to off;
	// EnhancedConfigFromEnv reads AUDIT_MONITORING_ENABLED and
	// AUDIT_SLOW_QUERY_THRESHOLD.
	Monitor monitor.Config

	// HIPAA refuses, before a round trip, PHI events without a principal or
	// a target resource (the database does the same in HIPAA mode: see
	// SetCompliance). Defaults to false; EnhancedConfigFromEnv reads
	// AUDIT_HIPAA_ENABLED.
	HIPAA bool
	// GDPR allows ExportSubject and RequestErasure; off, they are refused.
	// Defaults to true (EnhancedConfigFromEnv: AUDIT_GDPR_ENABLED, unset
	// means true); set GDPROff to turn it off in code.
	GDPROff bool

	// Logger receives the client's logs (cache state changes, slow
	// queries). Defaults to slog.Default().
	Logger *slog.Logger
}

// EnhancedConfigFromEnv reads every variable of the enhanced client.
func EnhancedConfigFromEnv() (EnhancedConfig, error) {
	return enhancedConfigFromEnv(os.Getenv)
}

func enhancedConfigFromEnv(getenv func(string) string) (EnhancedConfig, error) {
	base, err := configFromEnv(getenv)
	if err != nil {
		return EnhancedConfig{}, err
	}
	mon, err := monitor.ConfigFromEnv()
	if err != nil {
		return EnhancedConfig{}, err
	}
	cfg := EnhancedConfig{Config: base, RedisURL: strings.TrimSpace(getenv(EnvRedisURL)), Monitor: mon}
	if cfg.HIPAA, err = envBool(getenv, EnvHIPAAEnabled, false); err != nil {
		return EnhancedConfig{}, err
	}
	gdpr, err := envBool(getenv, EnvGDPREnabled, true)
	if err != nil {
		return EnhancedConfig{}, err
	}
	cfg.GDPROff = !gdpr
	return cfg, nil
}

func envBool(getenv func(string) string, name string, def bool) (bool, error) {
	v := strings.TrimSpace(getenv(name))
	if v == "" {
		return def, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, fmt.Errorf("client: %s: must be true or false", name)
	}
	return b, nil
}

// Enhanced is the client with a read cache in front of Search, Count and
// Get, monitoring (Health, Metrics) and the compliance switches. Writes
// invalidate the cached reads of their organization on every instance that
// shares the Redis. All of Client's methods are available.
type Enhanced struct {
	*Client
	cache   *cache.Cache // nil when disabled
	pages   *cache.Typed[Page]
	counts  *cache.Typed[int64]
	events  *cache.Typed[StoredEvent]
	redis   redis.UniversalClient
	ownsRDB bool
	mon     *monitor.Monitor
	timing  bool // mon's tracer is on the pools (Monitor.Enabled)
	gdpr    bool
	log     *slog.Logger
}

// Cache scopes besides organizations: reads not limited to one organization
// and Gets by id. Writes invalidate their organization and scopeAll;
// erasure (InvalidateAfterErasure) all three.
const (
	scopeAll    = ""
	scopeEvents = "\x00events"
)

// NewEnhanced makes the enhanced client. Redis need not be up: the cache
// then works in-process only and Health says degraded until it is.
func NewEnhanced(ctx context.Context, cfg EnhancedConfig) (*Enhanced, error) {
	e := &Enhanced{gdpr: !cfg.GDPROff, log: cfg.Logger}
	if e.log == nil {
		e.log = slog.Default()
	}
	mcfg := cfg.Monitor
	if mcfg.Logger == nil {
		mcfg.Logger = e.log
	}
	m, err := monitor.New(mcfg)
	if err != nil {
		return nil, err
	}
	e.mon, e.timing = m, mcfg.Enabled
	if e.timing {
		cfg.Tracer = m.Tracer()
	}
	if !cfg.CacheDisabled {
		e.redis = cfg.Redis
		if e.redis == nil && cfg.RedisURL != "" {
			rdb, err := RedisFromURL(cfg.RedisURL)
			if err != nil {
				return nil, err
			}
			e.redis, e.ownsRDB = rdb, true
		}
		ccfg := cfg.Cache
		if ccfg.Logger == nil {
			ccfg.Logger = e.log
		}
		c, err := cache.New(ccfg, e.redis)
		if err != nil {
			e.closeRedis()
			return nil, err
		}
		e.cache = c
		e.pages = cache.NewTyped(c, pageCodec())
		e.counts = cache.NewTyped(c, countCodec())
		e.events = cache.NewTyped(c, eventCodec())
	}
	base, err := NewWithConfig(ctx, cfg.Config)
	if err != nil {
		e.closeCache()
		return nil, err
	}
	e.Client = base
	if cfg.HIPAA {
		base.check = hipaaCheck
	}
	if e.cache != nil {
		base.written = e.invalidate
	}
	return e, nil
}

// RedisFromURL makes a go-redis client for url (REDIS_URL): a cluster
// client when the URL names more addresses (redis://h1:p1?addr=h2:p2).
func RedisFromURL(url string) (redis.UniversalClient, error) {
	if strings.Contains(url, "addr=") {
		opts, err := redis.ParseClusterURL(url)
		if err != nil {
			return nil, errors.New("client: RedisURL: not a valid Redis cluster URL")
		}
		return redis.NewClusterClient(opts), nil
	}
	opts, err := redis.ParseURL(url)
	if err != nil {
		return nil, errors.New("client: RedisURL: not a valid Redis URL")
	}
	return redis.NewClient(opts), nil
}

// hipaaCheck is HIPAA mode's rule, in the database trigger's words.
func hipaaCheck(e Event) error {
	if e.DataClassification != ClassificationPHI {
		return nil
	}
	if e.PrincipalID == "" {
		return invalid("principal_id", "required for PHI events in HIPAA mode")
	}
	if e.TargetResourceID == "" {
		return invalid("target_resource_id", "required for PHI events in HIPAA mode")
	}
	return nil
}

func (e *Enhanced) invalidate(ctx context.Context, orgs map[string]bool) {
	list := make([]string, 0, len(orgs)+1)
	for o := range orgs {
		list = append(list, o)
	}
	if !orgs[scopeAll] {
		list = append(list, scopeAll)
	}
	_ = e.cache.InvalidateOrganizations(ctx, list...)
}

// InvalidateAfterErasure removes every cached read that may hold an erased
// subject's values: see PurgeAfterErasure.
func (e *Enhanced) InvalidateAfterErasure(ctx context.Context, organizations []string) error {
	if e.cache == nil {
		return nil
	}
	return PurgeAfterErasure(ctx, e.cache, organizations)
}

// PurgeAfterErasure removes from c, the cache enhanced clients share, every
// read that may hold an erased subject's values, from L1 and from Redis
// (cache.PurgeOrganization, not just an invalidation): those of the
// organizations the erasure touched (workers.ErasureResult.Organizations),
// of reads across organizations and of Gets by id. The worker sets it as
// workers.Deps.AfterErasure when it has the Redis (REDIS_URL).
func PurgeAfterErasure(ctx context.Context, c *cache.Cache, organizations []string) error {
	for _, o := range append(slices.Clone(organizations), scopeAll, scopeEvents) {
		if _, err := c.PurgeOrganization(ctx, o); err != nil {
			return err
		}
	}
	return nil
}

// Search is Client.Search through the cache. A miss reads the primary,
// never a read replica: a replica behind the write (or erasure) that just
// invalidated the cache would put the old page back for L2TTL. Pages are
// cached under the
// query's organization ("all" when the query names none) and dropped when
// events for it are written through any enhanced client sharing the Redis.
// Events written by other means (psql, another program) are seen when the
// cached page expires (Cache.L1TTL, Cache.L2TTL). A page from the cache is
// shared with it and with other callers, as cache.Typed's values are: read
// it, never modify it or its events (copy what you want to change).
func (e *Enhanced) Search(ctx context.Context, q Query) (Page, error) {
	if e.cache == nil {
		return e.Client.Search(ctx, q)
	}
	key, err := cache.QueryKey(q.OrganizationID, "search", q)
	if err != nil {
		return Page{}, err
	}
	return e.pages.Get(ctx, key, func(ctx context.Context) (Page, error) { return search(ctx, e.pool, q) })
}

// Count is Client.Count through the cache, like Search.
func (e *Enhanced) Count(ctx context.Context, q Query) (int64, error) {
	if e.cache == nil {
		return e.Client.Count(ctx, q)
	}
	key, err := cache.QueryKey(q.OrganizationID, "count", q)
	if err != nil {
		return 0, err
	}
	return e.counts.Get(ctx, key, func(ctx context.Context) (int64, error) { return count(ctx, e.pool, q) })
}

// Get is Client.Get through the cache. Events do not change once written,
// except through erasure, after which InvalidateAfterErasure drops them.
// The event is shared with the cache, as Search's pages are: read it only.
func (e *Enhanced) Get(ctx context.Context, id int64) (StoredEvent, error) {
	if e.cache == nil {
		return e.Client.Get(ctx, id)
	}
	key, err := cache.QueryKey(scopeEvents, "get", id)
	if err != nil {
		return StoredEvent{}, err
	}
	return e.events.Get(ctx, key, func(ctx context.Context) (StoredEvent, error) { return get(ctx, e.pool, id) })
}

// ExportSubject is Client.ExportSubject, refused when GDPR is off.
func (e *Enhanced) ExportSubject(ctx context.Context, sub Subject, format ExportFormat, w io.Writer) (*ExportSummary, error) {
	if !e.gdpr {
		return nil, fmt.Errorf("client: %w", subject.ErrGDPROff)
	}
	return e.Client.ExportSubject(ctx, sub, format, w)
}

// RequestErasure is Client.RequestErasure, refused when GDPR is off.
func (e *Enhanced) RequestErasure(ctx context.Context, sub Subject, reason string) (int64, error) {
	if !e.gdpr {
		return 0, fmt.Errorf("client: %w", subject.ErrGDPROff)
	}
	return e.Client.RequestErasure(ctx, sub, reason)
}

// Health reports the database, the cache, partitions ahead, seal lag and
// the last verification (see monitor.Monitor.Health), with the thresholds
// of EnhancedConfig.Monitor, whether or not monitoring is on.
func (e *Enhanced) Health(ctx context.Context) monitor.HealthStatus {
	return e.mon.Health(ctx, e.pool, e.cacheHealth())
}

// Metrics returns the cache hit rate, query times (zero unless
// EnhancedConfig.Monitor.Enabled) and pool usage.
func (e *Enhanced) Metrics() monitor.PerformanceMetrics {
	return e.mon.Metrics(e.pool, e.cacheHealth())
}

// TopStatements returns the n statements of this database that took the
// most time, from pg_stat_statements; an error wrapping
// monitor.ErrStatementsUnavailable when the extension is not there.
func (e *Enhanced) TopStatements(ctx context.Context, n int) ([]monitor.Statement, error) {
	return monitor.TopStatements(ctx, e.pool, n)
}

// CacheStats returns the cache's per-level counters; the zero value without
// a cache.
func (e *Enhanced) CacheStats() cache.Stats {
	if e.cache == nil {
		return cache.Stats{}
	}
	return e.cache.Stats()
}

// SlowQueries returns the latest statements over the slow-query threshold;
// nil without monitoring.
func (e *Enhanced) SlowQueries() []monitor.SlowQuery {
	if !e.timing {
		return nil
	}
	return e.mon.Queries().SlowQueries()
}

func (e *Enhanced) cacheHealth() monitor.Cache {
	if e.cache == nil {
		return nil
	}
	return cacheHealth{e.cache}
}

// cacheHealth adapts cache.Cache to monitor.Cache.
type cacheHealth struct{ c *cache.Cache }

func (h cacheHealth) Health(context.Context) (string, string) {
	st := h.c.Health()
	switch st.Status {
	case cache.HealthOK:
		return string(monitor.StatusHealthy), "L1 and Redis"
	case cache.HealthL1Only:
		return string(monitor.StatusHealthy), "in-process only (no Redis configured)"
	default:
		return string(monitor.StatusDegraded), st.Reason + "; reads go to PostgreSQL"
	}
}

func (h cacheHealth) Counts() (hits, misses int64) {
	s := h.c.Stats()
	// a read is a hit when either level answered; a miss when it loaded
	return int64(s.L1.Hits + s.L2.Hits), int64(s.Loads.Loads)
}

// Close closes the cache, the Redis client it made and the pools.
func (e *Enhanced) Close() {
	e.closeCache()
	e.Client.Close()
}

func (e *Enhanced) closeCache() {
	if e.cache != nil {
		_ = e.cache.Close()
	}
	e.closeRedis()
}

func (e *Enhanced) closeRedis() {
	if e.ownsRDB && e.redis != nil {
		_ = e.redis.Close()
	}
}
