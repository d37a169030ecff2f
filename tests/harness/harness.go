// Package harness gives integration tests a real PostgreSQL, a real Redis
// and a real S3-compatible server.
//
// PostgreSQL comes from, in order: AUDIT_TEST_DB_URL (a superuser URL of a
// server you run); a Docker daemon through dockertest, when one answers; an
// ephemeral cluster from the local binaries (initdb + pg_ctl on a free
// loopback port, as the postgres user when the tests run as root). Redis
// likewise: AUDIT_TEST_REDIS_URL, dockertest, or a local redis-server. S3:
// AUDIT_TEST_S3_URL (+ AUDIT_TEST_S3_ACCESS_KEY_ID, ..._SECRET_ACCESS_KEY,
// ..._REGION), or a local versitygw (installed by .ci/run with `go install`,
// found on PATH or in $(go env GOPATH)/bin); without either, tests that ask
// for S3 fail and say how to install it.
//
// One migrated template database is made per test binary; every test gets a
// fresh database cloned from it, dropped when the test ends, so tests run in
// parallel. Everything started is stopped and removed by Main.
package harness

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/goleak"

	"github.com/auditdb/auditdb/internal/embeddedpg"
	"github.com/auditdb/auditdb/internal/migrate"
)

// Postgres is the server a test binary uses.
type Postgres struct {
	// AdminURL connects as a superuser to the maintenance database.
	AdminURL string
	template string
	stop     func()
}

var (
	shared  *Postgres
	redis   *Redis
	counter atomic.Int64
)

// Options for Main.
type Options struct {
	// Redis starts a Redis server too.
	Redis bool
	// S3 starts an S3-compatible server too (SharedS3) and points the
	// process's AWS_* variables at it.
	S3 bool
}

// Main starts the services, runs the tests and stops everything. Call it
// from TestMain.
func Main(m *testing.M, opts Options) {
	os.Exit(run(m, opts))
}

func run(m *testing.M, opts Options) int {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pg, err := StartPostgres(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, "harness:", err)
		return 1
	}
	defer pg.stop()
	shared = pg
	if opts.Redis {
		r, err := StartRedis(ctx)
		if err != nil {
			fmt.Fprintln(os.Stderr, "harness:", err)
			return 1
		}
		defer r.stop()
		redis = r
	}
	if opts.S3 {
		s, err := StartS3(ctx)
		if err != nil {
			fmt.Fprintln(os.Stderr, "harness:", err)
			return 1
		}
		defer s.stop()
		s.SetEnv()
		s3shared = s
	}
	code := m.Run()
	if code == 0 {
		// Workers and pools are goroutine-heavy: a test that leaves one
		// running fails the binary.
		if err := goleak.Find(LeakOptions()...); err != nil {
			fmt.Fprintln(os.Stderr, "harness: goroutines left running:", err)
			return 1
		}
	}
	return code
}

// LeakOptions are the goroutines goleak may find after the tests: idle
// keep-alive connections of HTTP clients (the S3 SDK's) that nothing owns,
// and the wait on the S3 server process that Main stops after the check.
func LeakOptions() []goleak.Option {
	return []goleak.Option{
		goleak.IgnoreAnyFunction("github.com/auditdb/auditdb/tests/harness.startVersitygw.func1"),
		goleak.IgnoreAnyFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreAnyFunction("net/http.(*persistConn).writeLoop"),
	}
}

// StartPostgres provides a server with a migrated template database.
func StartPostgres(ctx context.Context) (*Postgres, error) {
	pg := &Postgres{}
	switch {
	case os.Getenv("AUDIT_TEST_DB_URL") != "":
		pg.AdminURL = os.Getenv("AUDIT_TEST_DB_URL")
		pg.stop = func() {}
	default:
		if adminURL, stop, ok := dockerPostgres(ctx); ok {
			pg.AdminURL, pg.stop = adminURL, stop
			break
		}
		srv, err := embeddedpg.Start(ctx, embeddedpg.Config{})
		if err != nil {
			return nil, err
		}
		pg.AdminURL = srv.URL("postgres")
		pg.stop = func() { _ = srv.Stop() }
	}
	pg.template = fmt.Sprintf("auditdb_template_%d", os.Getpid())
	if err := pg.makeTemplate(ctx); err != nil {
		pg.stop()
		return nil, err
	}
	inner := pg.stop
	pg.stop = func() {
		_ = pg.admin(context.Background(), "DROP DATABASE IF EXISTS "+pgx.Identifier{pg.template}.Sanitize()+" WITH (FORCE)")
		inner()
	}
	return pg, nil
}

// Stop stops what StartPostgres started.
func (p *Postgres) Stop() { p.stop() }

func (p *Postgres) admin(ctx context.Context, sql string) error {
	conn, err := pgx.Connect(ctx, p.AdminURL)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, sql)
	return err
}

func (p *Postgres) makeTemplate(ctx context.Context) error {
	if err := p.admin(ctx, "CREATE DATABASE "+pgx.Identifier{p.template}.Sanitize()); err != nil {
		return fmt.Errorf("create template: %w", err)
	}
	pool, err := pgxpool.New(ctx, p.URL(p.template))
	if err != nil {
		return err
	}
	defer pool.Close()
	// The template uses the C trigger when the server has it (make test
	// installs it); tests that cover both implementations switch per database.
	if _, err := migrate.Migrate(ctx, pool, migrate.Options{Accelerator: true}); err != nil {
		return fmt.Errorf("migrate template: %w", err)
	}
	if _, err := pool.Exec(ctx, `SELECT count(*) FROM audit.ensure_partitions(3)`); err != nil {
		return fmt.Errorf("template partitions: %w", err)
	}
	return nil
}

// URL returns the admin URL pointed at database name.
func (p *Postgres) URL(name string) string {
	u, err := url.Parse(p.AdminURL)
	if err != nil {
		panic(err)
	}
	u.Path = "/" + name
	return u.String()
}

// DB is one test's database.
type DB struct {
	Name string
	URL  string // superuser
	Pool *pgxpool.Pool
}

// NewDB clones the migrated template into a database of the test's own.
func NewDB(t testing.TB) *DB {
	t.Helper()
	return shared.NewDB(t)
}

// NewEmptyDB creates a database with nothing installed.
func NewEmptyDB(t testing.TB) *DB {
	t.Helper()
	return shared.newDB(t, "template0")
}

// NewDB clones the migrated template.
func (p *Postgres) NewDB(t testing.TB) *DB {
	t.Helper()
	return p.newDB(t, p.template)
}

func (p *Postgres) newDB(t testing.TB, template string) *DB {
	t.Helper()
	ctx := context.Background()
	name := fmt.Sprintf("t_%d_%d", os.Getpid(), counter.Add(1))
	err := p.admin(ctx, fmt.Sprintf("CREATE DATABASE %s TEMPLATE %s", pgx.Identifier{name}.Sanitize(), pgx.Identifier{template}.Sanitize()))
	if err != nil {
		t.Fatalf("harness: create database: %v", err)
	}
	db := &DB{Name: name, URL: p.URL(name)}
	db.Pool, err = pgxpool.New(ctx, db.URL)
	if err != nil {
		t.Fatalf("harness: connect: %v", err)
	}
	t.Cleanup(func() {
		db.Pool.Close()
		if err := p.admin(context.Background(), "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			t.Errorf("harness: drop database: %v", err)
		}
	})
	return db
}

// LoginRole creates a login role that is a member of group (audit_writer...)
// and returns a pool connected as it to this database. The role is dropped
// when the test ends.
func (db *DB) LoginRole(t testing.TB, group string) *pgxpool.Pool {
	t.Helper()
	ctx := context.Background()
	role := fmt.Sprintf("%s_%s", strings.TrimPrefix(group, "audit_"), db.Name)
	if _, err := db.Pool.Exec(ctx, fmt.Sprintf("CREATE ROLE %s LOGIN IN ROLE %s", pgx.Identifier{role}.Sanitize(), pgx.Identifier{group}.Sanitize())); err != nil {
		t.Fatalf("harness: create role: %v", err)
	}
	u, _ := url.Parse(db.URL)
	u.User = url.User(role)
	pool, err := pgxpool.New(ctx, u.String())
	if err != nil {
		t.Fatalf("harness: connect as %s: %v", role, err)
	}
	t.Cleanup(func() {
		pool.Close()
		_, _ = db.Pool.Exec(context.Background(), fmt.Sprintf("DROP OWNED BY %s; DROP ROLE %s", pgx.Identifier{role}.Sanitize(), pgx.Identifier{role}.Sanitize()))
	})
	return pool
}

// Triggers are the insert trigger implementations tests run against.
var Triggers = []string{"plpgsql", "c"}

// ForEachTrigger runs test once per insert trigger implementation, as
// parallel subtests named after it, each with a database of its own
// switched to that implementation.
func ForEachTrigger(t *testing.T, test func(t *testing.T, db *DB)) {
	t.Helper()
	for _, impl := range Triggers {
		t.Run(impl, func(t *testing.T) {
			t.Parallel()
			db := NewDB(t)
			db.UseTrigger(t, impl)
			test(t, db)
		})
	}
}

// UseTrigger switches this database's insert trigger to impl ("c" or
// "plpgsql") and fails the test if that implementation is not available.
func (db *DB) UseTrigger(t testing.TB, impl string) {
	t.Helper()
	var got string
	if err := db.Pool.QueryRow(context.Background(), `SELECT audit.use_accelerator($1)`, impl == "c").Scan(&got); err != nil {
		t.Fatalf("harness: use_accelerator: %v", err)
	}
	if got != impl {
		t.Fatalf("harness: insert trigger %q is not available (got %q): run `make install-extension`, which builds the C accelerator", impl, got)
	}
}
