package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"text/tabwriter"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/urfave/cli/v2"

	"github.com/auditdb/auditdb/client"
	"github.com/auditdb/auditdb/internal/migrate"
)

// exitError carries an exit code through urfave/cli without printing twice.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

// errTampered makes `verify` exit 2 after its report has been printed.
var errTampered = &exitError{code: 2}

// Run is the whole CLI, callable in-process from tests. It returns the exit
// code: 0 success, 1 error, 2 verification found tampering.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	app := newApp(stdout, stderr)
	// urfave/cli v2 writes into package-level values while it parses (the
	// help flag's defaults, the help command), so two Runs in one process
	// (parallel tests) race there. Parsing is serialised; the lock is let go
	// as the chosen action starts, so long commands (run) do not hold it.
	setupMu.Lock()
	var release sync.Once
	unlock := func() { release.Do(setupMu.Unlock) }
	defer unlock()
	releaseOnAction(app.Commands, unlock)
	err := app.RunContext(ctx, args)
	if err == nil {
		return 0
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.msg != "" {
			fmt.Fprintln(stderr, "auditworker:", ee.msg)
		}
		return ee.code
	}
	if schemaMissing(err) {
		fmt.Fprintln(stderr, "auditworker:", errNoSchema)
		return 1
	}
	fmt.Fprintln(stderr, "auditworker:", oneLine(err.Error()))
	return 1
}

// errNoSchema is what every command says on a database where auditdb is not
// (or not completely) installed, instead of PostgreSQL's "relation ... does
// not exist".
var errNoSchema = errors.New("auditdb is not installed in this database (or only partly): run `auditworker migrate` first")

// schemaMissing reports whether err comes from a table, schema or function
// of auditdb (schema audit) or of its River (audit_river) that does not
// exist: a database that was never migrated, or one that CREATE EXTENSION
// installed without the River tables that migrate adds.
func schemaMissing(err error) bool {
	if errors.Is(err, errNoSchema) || errors.Is(err, client.ErrSchemaNotInstalled) {
		return true
	}
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return false
	}
	switch pgErr.Code {
	case "42P01", "3F000", "42883": // undefined_table, invalid_schema_name, undefined_function
		return strings.Contains(pgErr.Message, "audit")
	}
	return false
}

// requireSchema fails with errNoSchema unless auditdb's tables and River's
// are there: for commands that would otherwise start and fail later, or
// loop on the error (run).
func requireSchema(ctx context.Context, pool *pgxpool.Pool) error {
	var ok bool
	if err := pool.QueryRow(ctx, `SELECT to_regclass('audit.audit_log') IS NOT NULL AND to_regclass($1) IS NOT NULL`,
		migrate.RiverSchema+".river_job").Scan(&ok); err != nil {
		return err
	}
	if !ok {
		return errNoSchema
	}
	return nil
}

var setupMu sync.Mutex

func releaseOnAction(cmds []*cli.Command, unlock func()) {
	for _, c := range cmds {
		if action := c.Action; action != nil {
			c.Action = func(cc *cli.Context) error {
				unlock()
				return action(cc)
			}
		}
		releaseOnAction(c.Subcommands, unlock)
	}
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// Flags are built fresh for every app: urfave/cli writes parse state into
// the flag values, so sharing them between two Run calls is a data race.

func databaseURLFlag() cli.Flag {
	return &cli.StringFlag{Name: "database-url", Usage: "PostgreSQL URL", EnvVars: []string{"AUDIT_DB_URL"}}
}

func jsonFlag() cli.Flag {
	return &cli.BoolFlag{Name: "json", Usage: "print JSON instead of tables", EnvVars: []string{"AUDIT_JSON"}}
}

func newApp(stdout, stderr io.Writer) *cli.App {
	return &cli.App{
		Name:           "auditworker",
		Usage:          "operate an auditdb tamper-evident audit log",
		Writer:         stdout,
		ErrWriter:      stderr,
		ExitErrHandler: func(*cli.Context, error) {},
		Flags:          []cli.Flag{databaseURLFlag()},
		Commands: []*cli.Command{
			migrateCommand(),
			verifyCommand(),
			sealCommand(),
			runCommand(),
			keysCommand(),
			anchorCommand(),
			partitionsCommand(),
			statusCommand(),
			reportCommand(),
			retentionCommand(),
			archiveCommand(),
			devCommand(),
			demoCommand(),
			gdprCommand(),
			complianceCommand(),
			optimizeCommand(),
			alertsCommand(),
			doctorCommand(),
			backupCommand(),
			restoreCommand(),
			{
				Name:   "extension-script",
				Usage:  "print the CREATE EXTENSION script built from sql/ (used by make install-extension)",
				Hidden: true,
				Action: func(c *cli.Context) error { return printExtensionScript(c.App.Writer) },
			},
		},
	}
}

// connect opens a pool on --database-url / AUDIT_DB_URL.
func connect(c *cli.Context) (*pgxpool.Pool, error) {
	return connectTraced(c, nil)
}

// connectTraced is connect with a query tracer (nil: none).
func connectTraced(c *cli.Context, tracer pgx.QueryTracer) (*pgxpool.Pool, error) {
	url := c.String("database-url")
	if url == "" {
		return nil, errors.New("no database: set AUDIT_DB_URL or --database-url (or run `auditworker dev` for a private one)")
	}
	return openPool(c, "database-url", url, tracer)
}

// replicaFlag names a standby that verification reads from.
func replicaFlag() cli.Flag {
	return &cli.StringFlag{Name: "replica-url", EnvVars: []string{"AUDIT_DB_REPLICA_URL"},
		Usage: "a streaming standby of the database to read the log from when verifying (runs are recorded on the primary)"}
}

// connectReplica opens --replica-url, or returns nil without one.
func connectReplica(c *cli.Context, tracer pgx.QueryTracer) (*pgxpool.Pool, error) {
	url := c.String("replica-url")
	if url == "" {
		return nil, nil
	}
	return openPool(c, "replica-url", url, tracer)
}

// openPool opens and pings a pool on url, which the flag named flag gave;
// errors name the flag and the server, never the URL (it may hold a
// password).
func openPool(c *cli.Context, flag, url string, tracer pgx.QueryTracer) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("%s: not a valid PostgreSQL URL", flag)
	}
	cfg.ConnConfig.Tracer = tracer
	// pool sizes, for the commands that have the flags (run)
	if n := c.Int("pool-max"); n > 0 {
		cfg.MaxConns = int32(n)
	}
	if n := c.Int("pool-min"); n > 0 {
		cfg.MinConns = int32(min(n, int(cfg.MaxConns)))
	}
	pool, err := pgxpool.NewWithConfig(c.Context, cfg)
	if err != nil {
		return nil, fmt.Errorf("%s: connect: %w", flag, err)
	}
	if err := pool.Ping(c.Context); err != nil {
		pool.Close()
		return nil, fmt.Errorf("%s: connect to %s:%d/%s: %w", flag, cfg.ConnConfig.Host, cfg.ConnConfig.Port, cfg.ConnConfig.Database, err)
	}
	return pool, nil
}

// withPool wraps an action that needs the database: it connects, runs the
// action, and closes the pool.
func withPool(action func(c *cli.Context, pool *pgxpool.Pool) error) cli.ActionFunc {
	return func(c *cli.Context) error {
		pool, err := connect(c)
		if err != nil {
			return err
		}
		defer pool.Close()
		return action(c, pool)
	}
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// table prints rows under a header, aligned.
func table(w io.Writer, header []string, rows [][]string) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	under := make([]string, len(header))
	for i, h := range header {
		under[i] = strings.Repeat("-", len(h))
	}
	fmt.Fprintln(tw, strings.Join(under, "\t"))
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	tw.Flush()
}

// isTerminal reports whether w is a character device (progress bars go
// only to terminals).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
