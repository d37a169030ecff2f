package client

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// ErrNotFound is returned (wrapped) when a requested event does not exist.
var ErrNotFound = errors.New("client: event not found")

// ErrSchemaNotInstalled is returned (wrapped) by CheckConnection when the
// database answers but has no audit.audit_log.
var ErrSchemaNotInstalled = errors.New("client: auditdb schema not installed (run `auditworker migrate`)")

// Client writes and reads audit events through a connection pool. It is
// safe for concurrent use; Close it when done.
type Client struct {
	pool       *pgxpool.Pool
	maxRetries int
	replica    *replicaRouter // nil without Config.ReplicaURL

	// Hooks of the enhanced client, nil in the others: check runs on every
	// event before it is sent; written gets the organizations of events
	// once they are committed.
	check   func(Event) error
	written func(ctx context.Context, organizations map[string]bool)
}

// New connects to url, or to AUDIT_DB_URL when url is empty, with every
// other setting at its default (see Config). Use NewWithConfig, with
// ConfigFromEnv for the pool sizes, to set more. Connections are opened in
// the background: call CheckConnection to find out whether the database
// answers.
func New(ctx context.Context, url string) (*Client, error) {
	return newFromURL(ctx, url, os.Getenv)
}

func newFromURL(ctx context.Context, url string, getenv func(string) string) (*Client, error) {
	if url == "" {
		url = strings.TrimSpace(getenv(EnvURL))
	}
	if url == "" {
		return nil, errors.New("client: no database URL: pass one to New or set " + EnvURL)
	}
	return NewWithConfig(ctx, Config{URL: url})
}

// NewWithConfig makes a client from cfg, with its defaults applied and
// validated. Connections are opened in the background (PoolMin of them):
// call CheckConnection to find out whether the database answers.
func NewWithConfig(ctx context.Context, cfg Config) (*Client, error) {
	if cfg.URL == "" {
		// Validate says so in the same words
		return nil, cfg.Validate()
	}
	pcfg, err := pgxpool.ParseConfig(cfg.URL)
	if err != nil {
		return nil, checkURL("URL", cfg.URL)
	}
	if cfg.ApplicationName == "" {
		cfg.ApplicationName = pcfg.ConnConfig.RuntimeParams["application_name"]
	}
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}

	configurePool(pcfg, cfg)

	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, fmt.Errorf("client: open pool: %w", err)
	}
	c := &Client{pool: pool, maxRetries: max(cfg.MaxRetries, 0)}
	if cfg.ReplicaURL != "" {
		if c.replica, err = newReplicaRouter(ctx, cfg, pool); err != nil {
			pool.Close()
			return nil, err
		}
	}
	return c, nil
}

// configurePool applies cfg's pool settings (sizes, idle time, connect
// timeout, tracer, application_name, statement_timeout, TLS) to pcfg,
// parsed from URL or ReplicaURL, so that both pools are set up alike. cfg
// must have its defaults (WithDefaults) and its ApplicationName resolved
// from URL: the replica's pool reports the same name as the primary's.
func configurePool(pcfg *pgxpool.Config, cfg Config) {
	pcfg.MinConns = cfg.PoolMin
	pcfg.MaxConns = cfg.PoolMax
	pcfg.MaxConnIdleTime = cfg.IdleTimeout
	if cfg.IdleTimeout < 0 {
		pcfg.MaxConnIdleTime = math.MaxInt64
	}
	cc := pcfg.ConnConfig
	cc.ConnectTimeout = cfg.ConnectTimeout
	if cc.RuntimeParams == nil {
		cc.RuntimeParams = map[string]string{}
	}
	cc.RuntimeParams["application_name"] = cfg.ApplicationName
	if cfg.Tracer != nil {
		cc.Tracer = cfg.Tracer
	}
	cc.RuntimeParams["statement_timeout"] = "0"
	if cfg.StatementTimeout > 0 {
		cc.RuntimeParams["statement_timeout"] = strconv.FormatInt(cfg.StatementTimeout.Milliseconds(), 10)
	}
	if cfg.TLSConfig != nil {
		requireTLS(cc, cfg.TLSConfig)
	}
}

// requireTLS makes every TCP destination of cc use tlsCfg, dropping the
// plaintext fallbacks that sslmode=prefer and allow add.
func requireTLS(cc *pgx.ConnConfig, tlsCfg *tls.Config) {
	forHost := func(host string) *tls.Config {
		if strings.HasPrefix(host, "/") {
			return nil // a Unix socket: TLS does not apply
		}
		t := tlsCfg.Clone()
		if t.ServerName == "" {
			t.ServerName = host
		}
		return t
	}
	type dest struct {
		host string
		port uint16
	}
	seen := map[dest]bool{{cc.Host, cc.Port}: true}
	cc.TLSConfig = forHost(cc.Host)
	var fallbacks []*pgconn.FallbackConfig
	for _, fb := range cc.Fallbacks {
		d := dest{fb.Host, fb.Port}
		if seen[d] {
			continue
		}
		seen[d] = true
		fb.TLSConfig = forHost(fb.Host)
		fallbacks = append(fallbacks, fb)
	}
	cc.Fallbacks = fallbacks
}

// Pool returns the client's connection pool, for queries this package does
// not offer. Closing the client closes it.
func (c *Client) Pool() *pgxpool.Pool { return c.pool }

// CheckConnection runs a query on one connection and checks that the
// auditdb schema is installed (audit.audit_log exists). It returns nil when
// the client can be used, an error wrapping ErrSchemaNotInstalled when the
// database answers without the schema, and the connection error otherwise.
func (c *Client) CheckConnection(ctx context.Context) error {
	var one int
	var installed bool
	err := c.pool.QueryRow(ctx, `SELECT 1, to_regclass('audit.audit_log') IS NOT NULL`).Scan(&one, &installed)
	if err != nil {
		return fmt.Errorf("client: check connection: %w", err)
	}
	if !installed {
		return fmt.Errorf("client: check connection: %w", ErrSchemaNotInstalled)
	}
	return nil
}

// Close closes every connection of the pools, waiting for those in use to
// be released.
func (c *Client) Close() {
	c.pool.Close()
	if c.replica != nil {
		c.replica.replica.Close()
	}
}

// Retryable reports whether err (or an error it wraps) is a serialization
// failure (SQLSTATE 40001) or a deadlock (40P01): the transaction did
// nothing and can be run again. WithTx does so by itself.
func Retryable(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return false
	}
	return pgErr.Code == "40001" || pgErr.Code == "40P01"
}

// querier is what the pool and a transaction have in common.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	CopyFrom(ctx context.Context, table pgx.Identifier, columns []string, src pgx.CopyFromSource) (int64, error)
}

var (
	_ querier = (*pgxpool.Pool)(nil)
	_ querier = (pgx.Tx)(nil)
)
