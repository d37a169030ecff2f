package client

import (
	"context"
	"crypto/tls"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/auditdb/auditdb/tests/harness"
)

const secretURL = "postgres://auditor:s3cr3t-pw@db.example:5432/audit"

func TestConfigWithDefaults(t *testing.T) {
	t.Parallel()
	require.Equal(t, Config{
		URL:                  secretURL,
		PoolMin:              PoolMinDefault,
		PoolMax:              PoolMaxDefault,
		ConnectTimeout:       ConnectTimeoutDefault,
		StatementTimeout:     StatementTimeoutDefault,
		IdleTimeout:          IdleTimeoutDefault,
		ApplicationName:      ApplicationNameDefault,
		MaxRetries:           MaxRetriesDefault,
		ReplicaMaxLag:        ReplicaMaxLagDefault,
		ReplicaCheckInterval: ReplicaCheckDefault,
	}, Config{URL: secretURL}.WithDefaults())

	set := Config{URL: secretURL, PoolMin: 1, PoolMax: 4, ConnectTimeout: time.Second,
		StatementTimeout: -1, IdleTimeout: time.Minute, ApplicationName: "x", MaxRetries: -1,
		ReplicaMaxLag: time.Minute, ReplicaCheckInterval: time.Millisecond}
	require.Equal(t, set, set.WithDefaults(), "fields that are set stay")
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		cfg  Config
		want string // "" for valid
	}{
		{"defaults", Config{URL: secretURL}, ""},
		{"key value string", Config{URL: "host=localhost dbname=audit password=s3cr3t-pw"}, ""},
		{"no URL", Config{}, "client: URL: is required (pass one, or set AUDIT_DB_URL)"},
		{"unparseable URL", Config{URL: "postgres://auditor:s3cr3t-pw@db.example:port/audit"},
			"client: URL: cannot be parsed as a PostgreSQL connection string (not shown: it may hold a password)"},
		{"unparseable query", Config{URL: secretURL + "?pool_max_conns=many"},
			"client: URL: cannot be parsed as a PostgreSQL connection string (not shown: it may hold a password)"},
		{"negative PoolMin", Config{URL: secretURL, PoolMin: -1}, "client: PoolMin: must not be negative (-1)"},
		{"negative PoolMax", Config{URL: secretURL, PoolMax: -3}, "client: PoolMax: must be at least 1 (-3)"},
		{"PoolMax below default PoolMin", Config{URL: secretURL, PoolMax: 1}, "client: PoolMax: must be at least PoolMin (2)"},
		{"PoolMax below PoolMin", Config{URL: secretURL, PoolMin: 8, PoolMax: 4}, "client: PoolMax: must be at least PoolMin (8)"},
		{"PoolMax equal PoolMin", Config{URL: secretURL, PoolMin: 4, PoolMax: 4}, ""},
		{"PoolMin above default PoolMax", Config{URL: secretURL, PoolMin: 20}, "client: PoolMax: must be at least PoolMin (20)"},
		{"negative ConnectTimeout", Config{URL: secretURL, ConnectTimeout: -time.Second}, "client: ConnectTimeout: must not be negative (-1s)"},
		{"StatementTimeout under 1ms", Config{URL: secretURL, StatementTimeout: 500 * time.Microsecond},
			"client: StatementTimeout: must be at least 1ms, or negative for none (500µs)"},
		{"StatementTimeout too long", Config{URL: secretURL, StatementTimeout: 600 * time.Hour},
			"client: StatementTimeout: must be at most 596h31m23.647s (600h0m0s)"},
		{"no StatementTimeout", Config{URL: secretURL, StatementTimeout: -1}, ""},
		{"no IdleTimeout", Config{URL: secretURL, IdleTimeout: -1}, ""},
		{"no retries", Config{URL: secretURL, MaxRetries: -1}, ""},
		{"long ApplicationName", Config{URL: secretURL, ApplicationName: strings.Repeat("a", 64)},
			"client: ApplicationName: longer than 63 bytes (64)"},
		{"non-ASCII ApplicationName", Config{URL: secretURL, ApplicationName: "audit-ü"},
			"client: ApplicationName: must be printable ASCII"},
		{"TLS", Config{URL: secretURL, TLSConfig: &tls.Config{MinVersion: tls.VersionTLS13}}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if tc.want == "" {
				require.NoError(t, err)
				return
			}
			require.EqualError(t, err, tc.want)
			require.NotContains(t, err.Error(), "s3cr3t-pw")
		})
	}
}

func TestConfigFromEnv(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		env  map[string]string
		want Config
		err  string
	}{
		{"nothing set", nil, Config{}, ""},
		{"all set", map[string]string{EnvURL: secretURL, EnvPoolMin: "3", EnvPoolMax: " 12 "},
			Config{URL: secretURL, PoolMin: 3, PoolMax: 12}, ""},
		{"empty means unset", map[string]string{EnvPoolMin: "", EnvPoolMax: ""}, Config{}, ""},
		{"min only", map[string]string{EnvPoolMin: "5"}, Config{PoolMin: 5}, ""},
		{"not a number", map[string]string{EnvPoolMin: "two"}, Config{},
			`client: AUDIT_DB_POOL_MIN: must be a whole number ("two")`},
		{"fraction", map[string]string{EnvPoolMax: "2.5"}, Config{},
			`client: AUDIT_DB_POOL_MAX: must be a whole number ("2.5")`},
		{"out of range", map[string]string{EnvPoolMax: "99999999999"}, Config{},
			`client: AUDIT_DB_POOL_MAX: out of range ("99999999999")`},
		{"zero", map[string]string{EnvPoolMax: "0"}, Config{}, "client: AUDIT_DB_POOL_MAX: must be at least 1 (0)"},
		{"negative", map[string]string{EnvPoolMin: "-2"}, Config{}, "client: AUDIT_DB_POOL_MIN: must be at least 1 (-2)"},
		{"max below min", map[string]string{EnvPoolMin: "6", EnvPoolMax: "4"}, Config{},
			"client: AUDIT_DB_POOL_MAX: must be at least AUDIT_DB_POOL_MIN (6)"},
		{"max below default min", map[string]string{EnvPoolMax: "1"}, Config{},
			"client: AUDIT_DB_POOL_MAX: must be at least AUDIT_DB_POOL_MIN (2)"},
		{"min above default max", map[string]string{EnvPoolMin: "20"}, Config{},
			"client: AUDIT_DB_POOL_MIN: must be at most 10, the default of AUDIT_DB_POOL_MAX when it is unset (20)"},
		{"bad URL", map[string]string{EnvURL: "postgres://auditor:s3cr3t-pw@db.example:port/audit"}, Config{},
			"client: AUDIT_DB_URL: cannot be parsed as a PostgreSQL connection string (not shown: it may hold a password)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := configFromEnv(func(k string) string { return tc.env[k] })
			if tc.err != "" {
				require.EqualError(t, err, tc.err)
				require.NotContains(t, err.Error(), "s3cr3t-pw")
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, cfg)
		})
	}
}

func TestNewURLFromEnvironment(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := harness.NewDB(t)

	c, err := newFromURL(ctx, "", func(k string) string { return map[string]string{EnvURL: db.URL}[k] })
	require.NoError(t, err)
	t.Cleanup(c.Close)
	require.NoError(t, c.CheckConnection(ctx))

	_, err = newFromURL(ctx, "", func(string) string { return "" })
	require.EqualError(t, err, "client: no database URL: pass one to New or set AUDIT_DB_URL")

	// an explicit URL wins over the environment
	c2, err := newFromURL(ctx, db.URL, func(string) string { return "postgres://nowhere.invalid/x" })
	require.NoError(t, err)
	t.Cleanup(c2.Close)
	require.NoError(t, c2.CheckConnection(ctx))

	c3, err := New(ctx, db.URL)
	require.NoError(t, err)
	c3.Close()

	_, err = NewWithConfig(ctx, Config{})
	require.EqualError(t, err, "client: URL: is required (pass one, or set AUDIT_DB_URL)")
	_, err = NewWithConfig(ctx, Config{URL: db.URL, PoolMin: 3, PoolMax: 2})
	require.EqualError(t, err, "client: PoolMax: must be at least PoolMin (3)")
	_, err = New(ctx, "postgres://auditor:s3cr3t-pw@db.example:port/audit")
	require.Error(t, err)
	require.NotContains(t, err.Error(), "s3cr3t-pw")
}

func TestNewWithConfigAppliesSettings(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c, db := setup(t, Config{PoolMin: 1, PoolMax: 3, StatementTimeout: 250 * time.Millisecond,
		ApplicationName: "audit-test", IdleTimeout: time.Minute, ConnectTimeout: 3 * time.Second})

	pcfg := c.Pool().Config()
	require.EqualValues(t, 1, pcfg.MinConns)
	require.EqualValues(t, 3, pcfg.MaxConns)
	require.Equal(t, time.Minute, pcfg.MaxConnIdleTime)
	require.Equal(t, 3*time.Second, pcfg.ConnConfig.ConnectTimeout)

	var timeout, app string
	require.NoError(t, c.Pool().QueryRow(ctx,
		`SELECT current_setting('statement_timeout'), current_setting('application_name')`).Scan(&timeout, &app))
	require.Equal(t, "250ms", timeout)
	require.Equal(t, "audit-test", app)

	// the server enforces the timeout
	_, err := c.Pool().Exec(ctx, `SELECT pg_sleep(2)`)
	var pgErr *pgconn.PgError
	require.True(t, errors.As(err, &pgErr), "got %v", err)
	require.Equal(t, "57014", pgErr.Code) // query_canceled

	// no timeout; application_name from the URL when the field is empty
	c2, err := NewWithConfig(ctx, Config{URL: withParam(t, db.URL, "application_name", "from-url"), StatementTimeout: -1})
	require.NoError(t, err)
	t.Cleanup(c2.Close)
	require.NoError(t, c2.Pool().QueryRow(ctx,
		`SELECT current_setting('statement_timeout'), current_setting('application_name')`).Scan(&timeout, &app))
	require.Equal(t, "0", timeout)
	require.Equal(t, "from-url", app)
	require.EqualValues(t, PoolMaxDefault, c2.Pool().Config().MaxConns)
}

// With TLSConfig set the client talks TLS only: the URL's sslmode=prefer
// fallback to plaintext is dropped, so a server without TLS (the test
// cluster) is refused rather than silently used in the clear.
func TestTLSConfigRequiresTLS(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := harness.NewDB(t)
	var ssl string
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT current_setting('ssl')`).Scan(&ssl))
	if ssl == "on" {
		t.Skip("the test server has TLS enabled")
	}

	dsn := withParam(t, db.URL, "sslmode", "prefer")
	plain, err := NewWithConfig(ctx, Config{URL: dsn})
	require.NoError(t, err)
	t.Cleanup(plain.Close)
	require.NoError(t, plain.CheckConnection(ctx), "sslmode=prefer falls back to plaintext")

	strict, err := NewWithConfig(ctx, Config{URL: dsn, PoolMin: 1, TLSConfig: &tls.Config{MinVersion: tls.VersionTLS12}})
	require.NoError(t, err)
	t.Cleanup(strict.Close)
	require.Error(t, strict.CheckConnection(ctx))

	cc := strict.Pool().Config().ConnConfig
	require.NotNil(t, cc.TLSConfig)
	require.Equal(t, cc.Host, cc.TLSConfig.ServerName)
	for _, fb := range cc.Fallbacks {
		require.NotNil(t, fb.TLSConfig, "no plaintext fallback")
	}
}

func TestCheckConnectionWithoutSchema(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := harness.NewEmptyDB(t)
	c, err := New(ctx, db.URL)
	require.NoError(t, err)
	t.Cleanup(c.Close)
	err = c.CheckConnection(ctx)
	require.ErrorIs(t, err, ErrSchemaNotInstalled)

	// a server that does not answer: the error is the connection's, without
	// the password
	down, err := NewWithConfig(ctx, Config{URL: "postgres://auditor:s3cr3t-pw@127.0.0.1:1/audit", ConnectTimeout: time.Second})
	require.NoError(t, err)
	t.Cleanup(down.Close)
	err = down.CheckConnection(ctx)
	require.Error(t, err)
	require.NotErrorIs(t, err, ErrSchemaNotInstalled)
	require.NotContains(t, err.Error(), "s3cr3t-pw")
}

// withParam sets a query parameter of a connection URL.
func withParam(t *testing.T, raw, key, value string) string {
	t.Helper()
	u, err := url.Parse(raw)
	require.NoError(t, err)
	q := u.Query()
	q.Set(key, value)
	u.RawQuery = q.Encode()
	return u.String()
}
