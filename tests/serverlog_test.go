package tests

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/auditdb/auditdb/tests/harness"
)

// QuietWriterSettings are the settings the README ("Keeping values out of
// the server log") gives the application's login role. Role settings do
// not pass from a group to its members: they go on the login role.
var quietWriterSettings = []string{
	"log_min_messages = fatal",              // errors of its statements, whose messages may quote a value
	"log_min_error_statement = panic",       // the text of a failing statement
	"log_parameter_max_length_on_error = 0", // bind parameters of a failing statement
	"log_statement = none",                  // statements logged as they run
	"log_min_duration_statement = -1",       // slow statements, with their text
	"log_parameter_max_length = 0",          // bind parameters of statements logged anyway
}

// A writer's failing inserts put their values in PostgreSQL's server log
// (the statement's text, PostgreSQL's own input errors quoting the value,
// bind parameters) unless its login role carries the settings the README
// gives; with them, none of its values reach the log. The control role
// without them shows the log is read and would show the values.
func TestWriterValuesStayOutOfServerLog(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := harness.NewDB(t)
	logText := serverLog(t, db.Pool)

	login := func(name string, settings []string) *pgxpool.Pool {
		t.Helper()
		role := pgx.Identifier{name + "_" + db.Name}.Sanitize()
		_, err := db.Pool.Exec(ctx, "CREATE ROLE "+role+" LOGIN IN ROLE audit_writer")
		require.NoError(t, err)
		for _, s := range settings {
			k, v, _ := strings.Cut(s, " = ")
			_, err := db.Pool.Exec(ctx, fmt.Sprintf("ALTER ROLE %s SET %s = %s", role, k, pgx.Identifier{v}.Sanitize()))
			require.NoError(t, err, s)
		}
		u, err := url.Parse(db.URL)
		require.NoError(t, err)
		u.User = url.User(name + "_" + db.Name)
		pool, err := pgxpool.New(ctx, u.String())
		require.NoError(t, err)
		t.Cleanup(func() {
			pool.Close()
			_, _ = db.Pool.Exec(context.Background(), "DROP OWNED BY "+role+"; DROP ROLE "+role)
		})
		return pool
	}
	// failing inserts carrying marker: as literals (PostgreSQL's own input
	// errors quote them; the statement text holds them) and as parameters
	// (logged on error when log_parameter_max_length_on_error allows)
	fail := func(pool *pgxpool.Pool, marker string) {
		t.Helper()
		for _, sql := range []string{
			`INSERT INTO audit_log ("timestamp", action, status, source_ip) VALUES (now(), 'a', 'success', 'ip-` + marker + `')`,
			`INSERT INTO audit_log ("timestamp", action, status, details) VALUES (now(), 'a', 'success', '{"` + marker + `": ')`,
			`INSERT INTO audit_log ("timestamp", action, status, principal_id) VALUES (now(), 'a', 'status-` + marker + `', 'p-` + marker + `')`,
		} {
			_, err := pool.Exec(ctx, sql)
			require.Error(t, err)
		}
		conn, err := pool.Acquire(ctx)
		require.NoError(t, err)
		defer conn.Release()
		// the writer may set this one itself; -1 logs parameters in full
		_, err = conn.Exec(ctx, `SET log_parameter_max_length_on_error = -1`)
		require.NoError(t, err)
		_, err = conn.Exec(ctx, `INSERT INTO audit_log ("timestamp", action, status, principal_id) VALUES (now(), 'a', $1, $2)`,
			"param-status-"+marker, "param-p-"+marker)
		require.Error(t, err)
	}

	logged, quiet := marker(t), marker(t)
	fail(login("lp_logged", nil), logged)
	fail(login("lp_quiet", quietWriterSettings), quiet)

	var log string
	require.Eventually(t, func() bool {
		log = logText()
		return strings.Count(log, logged) >= 5
	}, 10*time.Second, 50*time.Millisecond, "the control role's values reach the log: statement texts, input errors, parameters")
	require.Contains(t, log, `invalid input syntax for type inet: "ip-`+logged, "PostgreSQL's own input error quotes the value")
	require.Contains(t, log, "param-p-"+logged, "bind parameters are logged on error without the setting")
	require.NotContains(t, log, quiet, "with the settings, none of the quiet writer's values reach the log")
}

// marker is a random string to find in the log.
func marker(t *testing.T) string {
	t.Helper()
	b := make([]byte, 8)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return "m" + hex.EncodeToString(b)
}

// serverLog returns a function reading the server's log through
// pg_read_file (superuser): the logging collector's current file, or the
// file next to the data directory where the harness's private cluster
// logs (pg_ctl -l).
func serverLog(t *testing.T, admin *pgxpool.Pool) func() string {
	t.Helper()
	ctx := context.Background()
	var path string
	require.NoError(t, admin.QueryRow(ctx, `SELECT CASE
			WHEN pg_current_logfile() LIKE '/%' THEN pg_current_logfile()
			WHEN pg_current_logfile() IS NOT NULL THEN current_setting('data_directory') || '/' || pg_current_logfile()
			ELSE current_setting('data_directory') || '/../server.log' END`).Scan(&path))
	read := func() (string, error) {
		var s string
		err := admin.QueryRow(ctx, `SELECT pg_read_file($1)`, path).Scan(&s)
		return s, err
	}
	_, err := read()
	require.NoError(t, err, "the server log must be readable (the harness's own cluster logs next to its data directory; a server of yours needs logging_collector on)")
	return func() string {
		s, err := read()
		require.NoError(t, err)
		return s
	}
}
