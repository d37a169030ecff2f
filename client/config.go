package client

import (
	"crypto/tls"
	"errors"
	"fmt"
	"github.com/jackc/pgx/v5"
	"math"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Defaults of Config, applied by Config.WithDefaults to fields left zero.
const (
	PoolMinDefault          int32         = 2
	PoolMaxDefault          int32         = 10
	ConnectTimeoutDefault   time.Duration = 10 * time.Second
	StatementTimeoutDefault time.Duration = 30 * time.Second
	IdleTimeoutDefault      time.Duration = 5 * time.Minute
	ApplicationNameDefault                = "auditdb-client"
	MaxRetriesDefault                     = 3
	ReplicaMaxLagDefault    time.Duration = 5 * time.Second
	ReplicaCheckDefault     time.Duration = time.Second
)

// The environment variables ConfigFromEnv and New read.
const (
	EnvURL     = "AUDIT_DB_URL"
	EnvPoolMin = "AUDIT_DB_POOL_MIN"
	EnvPoolMax = "AUDIT_DB_POOL_MAX"
	EnvReplica = "AUDIT_DB_REPLICA_URL"
)

// statement_timeout is an int4 of milliseconds on the server.
const maxStatementTimeout = time.Duration(math.MaxInt32) * time.Millisecond

// Config configures a Client made by NewWithConfig. Fields left zero take
// their defaults (see WithDefaults). The fields below replace whatever the
// URL says about the same settings (pool_min_conns, pool_max_conns,
// pool_max_conn_idle_time, connect_timeout, statement_timeout), except that
// an application_name in the URL is kept when ApplicationName is empty.
type Config struct {
	// URL is the PostgreSQL connection string, a URL
	// (postgres://user:password@host:5432/db?sslmode=verify-full) or
	// key=value pairs. It is never shown in errors. Required; ConfigFromEnv
	// and New read it from AUDIT_DB_URL.
	URL string

	// PoolMin is the number of connections the pool keeps open even when
	// idle. Defaults to 2.
	PoolMin int32

	// PoolMax is the most connections the pool opens; it must be at least
	// PoolMin. Defaults to 10.
	PoolMax int32

	// ConnectTimeout bounds establishing one connection, TLS included.
	// Defaults to 10s.
	ConnectTimeout time.Duration

	// StatementTimeout is set as the session's statement_timeout, so the
	// server cancels any statement running longer, a COPY of InsertBatch
	// included. It is sent in whole milliseconds, so it must be at least 1ms;
	// a negative value sets no timeout (statement_timeout = 0). Defaults to
	// 30s.
	StatementTimeout time.Duration

	// IdleTimeout closes connections idle for longer, down to PoolMin. A
	// negative value never closes them for idleness. Defaults to 5m.
	IdleTimeout time.Duration

	// TLSConfig, when set, is used for every TCP connection and the URL's
	// plaintext fallbacks (sslmode=prefer or allow) are dropped: setting it
	// means the client only talks TLS. ServerName defaults to the host being
	// dialled. Defaults to nil: the URL's sslmode decides.
	TLSConfig *tls.Config

	// ApplicationName is reported to the server as application_name and
	// shows in pg_stat_activity and the server's logs. At most 63 printable
	// ASCII characters. Defaults to the URL's application_name if it has
	// one, else "auditdb-client".
	ApplicationName string

	// MaxRetries is how many times WithTx runs its function again after a
	// serialization failure (SQLSTATE 40001) or a deadlock (40P01); a
	// negative value turns retries off. Defaults to 3.
	MaxRetries int

	// ReplicaURL is a read replica (a streaming standby of URL's server)
	// for Search, Count, Get and ReadPool, with the same pool settings as
	// URL. Reads go to the primary instead while the replica does not
	// answer or lags more than ReplicaMaxLag. Never shown in errors.
	// Defaults to empty: every read goes to the primary; ConfigFromEnv
	// reads AUDIT_DB_REPLICA_URL.
	ReplicaURL string

	// ReplicaMaxLag is how far behind the primary the replica may be for
	// reads to go to it. Defaults to 5s.
	ReplicaMaxLag time.Duration

	// Tracer receives every statement of the client's pools, for timing and
	// tracing: monitor.Monitor's Tracer, for instance (the enhanced client
	// sets it). Defaults to none.
	Tracer pgx.QueryTracer

	// ReplicaCheckInterval is how often the replica's state (up, lag) is
	// checked again, on the first read after it passes. Defaults to 1s.
	ReplicaCheckInterval time.Duration
}

// WithDefaults returns c with every field left zero set to its default.
func (c Config) WithDefaults() Config {
	if c.PoolMin == 0 {
		c.PoolMin = PoolMinDefault
	}
	if c.PoolMax == 0 {
		c.PoolMax = PoolMaxDefault
	}
	if c.ConnectTimeout == 0 {
		c.ConnectTimeout = ConnectTimeoutDefault
	}
	if c.StatementTimeout == 0 {
		c.StatementTimeout = StatementTimeoutDefault
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = IdleTimeoutDefault
	}
	if c.ApplicationName == "" {
		c.ApplicationName = ApplicationNameDefault
	}
	if c.MaxRetries == 0 {
		c.MaxRetries = MaxRetriesDefault
	}
	if c.ReplicaMaxLag == 0 {
		c.ReplicaMaxLag = ReplicaMaxLagDefault
	}
	if c.ReplicaCheckInterval == 0 {
		c.ReplicaCheckInterval = ReplicaCheckDefault
	}
	return c
}

// Validate checks c as NewWithConfig would use it, that is with its defaults
// applied. Its errors name the field and the rule.
func (c Config) Validate() error {
	c = c.WithDefaults()
	if c.URL == "" {
		return errors.New("client: URL: is required (pass one, or set " + EnvURL + ")")
	}
	if err := checkURL("URL", c.URL); err != nil {
		return err
	}
	if c.PoolMin < 0 {
		return fmt.Errorf("client: PoolMin: must not be negative (%d)", c.PoolMin)
	}
	if c.PoolMax < 1 {
		return fmt.Errorf("client: PoolMax: must be at least 1 (%d)", c.PoolMax)
	}
	if c.PoolMax < c.PoolMin {
		return fmt.Errorf("client: PoolMax: must be at least PoolMin (%d)", c.PoolMin)
	}
	if c.ConnectTimeout < 0 {
		return fmt.Errorf("client: ConnectTimeout: must not be negative (%s)", c.ConnectTimeout)
	}
	if c.StatementTimeout > 0 && c.StatementTimeout < time.Millisecond {
		return fmt.Errorf("client: StatementTimeout: must be at least 1ms, or negative for none (%s)", c.StatementTimeout)
	}
	if c.StatementTimeout > maxStatementTimeout {
		return fmt.Errorf("client: StatementTimeout: must be at most %s (%s)", maxStatementTimeout, c.StatementTimeout)
	}
	if len(c.ApplicationName) > 63 {
		return fmt.Errorf("client: ApplicationName: longer than 63 bytes (%d)", len(c.ApplicationName))
	}
	for _, r := range c.ApplicationName {
		if r < 0x20 || r > 0x7e {
			// the server would replace such characters with '?'
			return errors.New("client: ApplicationName: must be printable ASCII")
		}
	}
	if c.ReplicaURL != "" {
		if err := checkURL("ReplicaURL", c.ReplicaURL); err != nil {
			return err
		}
	}
	if c.ReplicaMaxLag < 0 {
		return fmt.Errorf("client: ReplicaMaxLag: must not be negative (%s)", c.ReplicaMaxLag)
	}
	if c.ReplicaCheckInterval < 0 {
		return fmt.Errorf("client: ReplicaCheckInterval: must not be negative (%s)", c.ReplicaCheckInterval)
	}
	return nil
}

// ConfigFromEnv reads AUDIT_DB_URL, AUDIT_DB_POOL_MIN, AUDIT_DB_POOL_MAX and
// AUDIT_DB_REPLICA_URL into a Config; unset or empty variables leave their field zero (so the
// default applies). Errors name the variable. A missing AUDIT_DB_URL is not
// an error here: set Config.URL before NewWithConfig, which requires one.
func ConfigFromEnv() (Config, error) {
	return configFromEnv(os.Getenv)
}

func configFromEnv(getenv func(string) string) (Config, error) {
	var c Config
	c.URL = strings.TrimSpace(getenv(EnvURL))
	if c.URL != "" {
		if err := checkURL(EnvURL, c.URL); err != nil {
			return Config{}, err
		}
	}
	c.ReplicaURL = strings.TrimSpace(getenv(EnvReplica))
	if c.ReplicaURL != "" {
		if err := checkURL(EnvReplica, c.ReplicaURL); err != nil {
			return Config{}, err
		}
	}
	var err error
	if c.PoolMin, err = envPoolSize(getenv, EnvPoolMin); err != nil {
		return Config{}, err
	}
	if c.PoolMax, err = envPoolSize(getenv, EnvPoolMax); err != nil {
		return Config{}, err
	}
	if d := c.WithDefaults(); d.PoolMax < d.PoolMin {
		if c.PoolMax == 0 {
			return Config{}, fmt.Errorf("client: %s: must be at most %d, the default of %s when it is unset (%d)",
				EnvPoolMin, PoolMaxDefault, EnvPoolMax, d.PoolMin)
		}
		return Config{}, fmt.Errorf("client: %s: must be at least %s (%d)", EnvPoolMax, EnvPoolMin, d.PoolMin)
	}
	return c, nil
}

func envPoolSize(getenv func(string) string, name string) (int32, error) {
	s := strings.TrimSpace(getenv(name))
	if s == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(s, 10, 32)
	if err != nil {
		var numErr *strconv.NumError
		if errors.As(err, &numErr) && errors.Is(numErr.Err, strconv.ErrRange) {
			return 0, fmt.Errorf("client: %s: out of range (%q)", name, s)
		}
		return 0, fmt.Errorf("client: %s: must be a whole number (%q)", name, s)
	}
	if n < 1 {
		// zero would silently mean the default
		return 0, fmt.Errorf("client: %s: must be at least 1 (%d)", name, n)
	}
	return int32(n), nil
}

// checkURL parses a connection string without ever putting it, or the
// error of the parser (which quotes it), into the message: a password that
// the parser fails to recognise would otherwise leak.
func checkURL(field, url string) error {
	if _, err := pgxpool.ParseConfig(url); err != nil {
		return fmt.Errorf("client: %s: cannot be parsed as a PostgreSQL connection string "+
			"(not shown: it may hold a password)", field)
	}
	return nil
}
