package main

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/urfave/cli/v2"

	"github.com/auditdb/auditdb/internal/doctor"
	"github.com/auditdb/auditdb/internal/verifier"
	auditsql "github.com/auditdb/auditdb/sql"
)

// The schemas a backup holds: everything auditdb installs except the
// public.audit_log view, which restore makes again from step 0006.
var backupSchemas = []string{"audit", "audit_river"}

func backupCommand() *cli.Command {
	return &cli.Command{
		Name: "backup",
		Usage: "pg_dump (custom format) of what auditdb owns: schemas audit and audit_river; " +
			"restore with `auditworker restore` (see the README)",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "out", Usage: "the backup file to write (mode 0600; required)", EnvVars: []string{"AUDIT_BACKUP_OUT"}},
			&cli.StringFlag{Name: "pg-bin", Usage: "folder of pg_dump and pg_restore (default: /usr/lib/postgresql/<server major>/bin, else PATH)", EnvVars: []string{"AUDIT_PG_BIN"}},
		},
		Action: withPool(func(c *cli.Context, pool *pgxpool.Pool) error {
			out := c.String("out")
			if out == "" {
				return errors.New("out: required")
			}
			var (
				major     int
				db        string
				installed bool
			)
			if err := pool.QueryRow(c.Context, auditsql.MustQuery("BackupDatabaseRead")).Scan(&major, &db, &installed); err != nil {
				return fmt.Errorf("backup: %w", err)
			}
			if !installed {
				return errors.New("backup: auditdb is not installed in this database (no audit.schema_migrations)")
			}
			bin, err := pgTool(c, "pg_dump", major)
			if err != nil {
				return err
			}
			tmp, err := os.CreateTemp(filepath.Dir(out), ".auditworker-backup-*")
			if err != nil {
				return fmt.Errorf("out: %w", err)
			}
			tmp.Close()
			defer os.Remove(tmp.Name()) // after the rename there is nothing to remove
			args := []string{"--format=custom", "--file=" + tmp.Name()}
			for _, s := range backupSchemas {
				args = append(args, "--schema="+s)
			}
			if err := runPGTool(c.Context, c, bin, args); err != nil {
				return fmt.Errorf("backup: %w", err)
			}
			if err := os.Chmod(tmp.Name(), 0o600); err != nil {
				return fmt.Errorf("out: %w", err)
			}
			if err := os.Rename(tmp.Name(), out); err != nil {
				return fmt.Errorf("out: %w", err)
			}
			st, err := os.Stat(out)
			if err != nil {
				return fmt.Errorf("out: %w", err)
			}
			fmt.Fprintf(c.App.Writer, "backup of database %s (schemas audit, audit_river) written to %s (%d bytes)\n", db, out, st.Size())
			return nil
		}),
	}
}

func restoreCommand() *cli.Command {
	return &cli.Command{
		Name: "restore",
		Usage: "restore a backup into an empty database (--database-url): roles, pg_restore, the public.audit_log view, " +
			"then doctor and verify (exit 0 intact, 2 not intact or schema differs)",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "in", Usage: "the backup file (required)", EnvVars: []string{"AUDIT_RESTORE_IN"}},
			&cli.StringFlag{Name: "pg-bin", Usage: "folder of pg_dump and pg_restore (default: /usr/lib/postgresql/<server major>/bin, else PATH)", EnvVars: []string{"AUDIT_PG_BIN"}},
		}, sealKeyFlags()...),
		Action: withPool(func(c *cli.Context, pool *pgxpool.Pool) error {
			in := c.String("in")
			if in == "" {
				return errors.New("in: required")
			}
			if _, err := os.Stat(in); err != nil {
				return fmt.Errorf("in: %w", err)
			}
			var (
				major     int
				db        string
				installed bool
			)
			if err := pool.QueryRow(c.Context, auditsql.MustQuery("BackupDatabaseRead")).Scan(&major, &db, &installed); err != nil {
				return fmt.Errorf("restore: %w", err)
			}
			if installed {
				return fmt.Errorf("restore: database %s already has auditdb installed: restore into a new, empty database", db)
			}
			bin, err := pgTool(c, "pg_restore", major)
			if err != nil {
				return err
			}
			if _, err := pool.Exec(c.Context, auditsql.MustQuery("RestoreRolesEnsure")); err != nil {
				return fmt.Errorf("restore: roles: %w", err)
			}
			// one transaction, stopping at the first error: a failed restore
			// leaves the database empty. Data is loaded before the post-data
			// section creates the triggers, so restored rows keep their hashes.
			if err := runPGTool(c.Context, c, bin, []string{"--exit-on-error", "--single-transaction", "--no-owner", in}); err != nil {
				return fmt.Errorf("restore: %w", err)
			}
			steps, err := auditsql.Steps()
			if err != nil {
				return err
			}
			err = pgx.BeginFunc(c.Context, pool, func(tx pgx.Tx) error {
				for _, s := range steps {
					if s.Version == 6 { // the views, public.audit_log among them
						if _, err := tx.Exec(c.Context, s.SQL); err != nil {
							return err
						}
					}
				}
				_, err := tx.Exec(c.Context, auditsql.MustQuery("RestoreAuditLogViewGrants"))
				return err
			})
			if err != nil {
				return fmt.Errorf("restore: public.audit_log view: %w", err)
			}
			fmt.Fprintf(c.App.Writer, "restored %s into database %s\n", in, db)

			rep, err := doctor.Check(c.Context, pool)
			if err != nil {
				return err
			}
			for _, d := range rep.Differences {
				fmt.Fprintf(c.App.Writer, "doctor: %s %s: %s\n", d.Check, d.Object, d.Problem)
			}
			keys, err := optionalSealKeys(c)
			if err != nil {
				return err
			}
			opts := verifier.Options{NoRecord: true}
			if keys != nil {
				opts.Keys = keys.Ring
			}
			vrep, err := runVerify(c, pool, opts)
			if err != nil {
				return err
			}
			fmt.Fprintf(c.App.Writer, "verify: %s\n", verifySummary(vrep))
			if !vrep.Intact() || !rep.OK() {
				return errTampered
			}
			return nil
		}),
	}
}

// pgTool finds pg_dump or pg_restore: --pg-bin, then the server's major
// version's Debian folder (a pg_dump older than the server refuses), then
// PATH.
func pgTool(c *cli.Context, name string, major int) (string, error) {
	if dir := c.String("pg-bin"); dir != "" {
		p := filepath.Join(dir, name)
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("pg-bin: no %s there", name)
		}
		return p, nil
	}
	p := filepath.Join("/usr/lib/postgresql", strconv.Itoa(major), "bin", name)
	if _, err := os.Stat(p); err == nil {
		return p, nil
	}
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("%s not found: install postgresql-client-%d or set --pg-bin", name, major)
	}
	return p, nil
}

// runPGTool runs a libpq tool on --database-url without putting the URL
// (and its password) on the command line, where ps shows it: the
// connection goes through libpq's environment variables.
func runPGTool(ctx context.Context, c *cli.Context, bin string, args []string) error {
	cfg, err := pgxpool.ParseConfig(c.String("database-url"))
	if err != nil {
		return errors.New("database-url: not a valid PostgreSQL URL")
	}
	cc := cfg.ConnConfig
	env := append(os.Environ(),
		"PGHOST="+cc.Host, "PGPORT="+strconv.Itoa(int(cc.Port)), "PGUSER="+cc.User, "PGDATABASE="+cc.Database,
		"PGPASSWORD="+cc.Password, "PGAPPNAME=auditworker")
	if u, err := url.Parse(c.String("database-url")); err == nil {
		if m := u.Query().Get("sslmode"); m != "" {
			env = append(env, "PGSSLMODE="+m)
		}
	}
	if bin == "" {
		return errors.New("no tool")
	}
	base := filepath.Base(bin)
	if base == "pg_restore" {
		args = append([]string{"--dbname=" + cc.Database}, args...)
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = env
	if out, err := cmd.CombinedOutput(); err != nil {
		// pg_dump's messages name objects, not row values
		return fmt.Errorf("%s: %w: %s", base, err, out)
	}
	return nil
}
