package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/urfave/cli/v2"

	"github.com/auditdb/auditdb/internal/embeddedpg"
	"github.com/auditdb/auditdb/internal/migrate"
)

// embedded is the embedded default of ARCHITECTURE.md: a private PostgreSQL
// from the machine's binaries, migrated, with partitions ahead, and Redis
// when redis-server is installed.
type embedded struct {
	pg       *embeddedpg.Server
	pool     *pgxpool.Pool
	trigger  string // the insert trigger's implementation: c or plpgsql
	redisURL string
	redis    *exec.Cmd
}

func startEmbedded(ctx context.Context, log io.Writer) (*embedded, error) {
	fmt.Fprintln(log, "starting a private PostgreSQL from the local binaries...")
	pg, err := embeddedpg.Start(ctx, embeddedpg.Config{Durable: true})
	if err != nil {
		return nil, err
	}
	e := &embedded{pg: pg}
	e.pool, err = pgxpool.New(ctx, pg.URL("postgres"))
	if err != nil {
		e.stop()
		return nil, err
	}
	res, err := migrate.Migrate(ctx, e.pool, migrate.Options{Accelerator: true})
	if err != nil {
		e.stop()
		return nil, err
	}
	e.trigger = res.Trigger
	if _, err := e.pool.Exec(ctx, `SELECT count(*) FROM audit.ensure_partitions(3)`); err != nil {
		e.stop()
		return nil, err
	}
	if bin, err := exec.LookPath("redis-server"); err == nil {
		port := pg.Port + 1
		e.redis = exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--loglevel", "warning")
		if err := e.redis.Start(); err == nil {
			e.redisURL = fmt.Sprintf("redis://127.0.0.1:%d/0", port)
		} else {
			e.redis = nil
		}
	}
	return e, nil
}

func (e *embedded) stop() {
	if e.pool != nil {
		e.pool.Close()
	}
	if e.redis != nil {
		_ = e.redis.Process.Kill()
		_ = e.redis.Wait()
	}
	_ = e.pg.Stop()
}

func devCommand() *cli.Command {
	return &cli.Command{
		Name:  "dev",
		Usage: "run the embedded default: a private, migrated PostgreSQL (and Redis when installed) until interrupted",
		Action: func(c *cli.Context) error {
			e, err := startEmbedded(c.Context, c.App.ErrWriter)
			if err != nil {
				return err
			}
			defer e.stop()
			w := c.App.Writer
			fmt.Fprintf(w, "AUDIT_DB_URL=%s\n", e.pg.URL("postgres"))
			if e.redisURL != "" {
				fmt.Fprintf(w, "REDIS_URL=%s\n", e.redisURL)
			} else {
				fmt.Fprintln(c.App.ErrWriter, "redis-server is not installed: the cache runs L1-only")
			}
			fmt.Fprintf(c.App.ErrWriter, "data in %s; Ctrl-C stops and removes everything\n", e.pg.DataDir())
			if f, ok := w.(*os.File); ok {
				_ = f.Sync()
			}
			<-c.Context.Done()
			return nil
		},
	}
}
