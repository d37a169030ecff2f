package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/urfave/cli/v2"

	"github.com/auditdb/auditdb/internal/embeddedpg"
	"github.com/auditdb/auditdb/internal/embeddedredis"
	"github.com/auditdb/auditdb/internal/migrate"
)

// embedded is the embedded default of ARCHITECTURE.md: a private PostgreSQL
// from the machine's binaries, migrated, with partitions ahead, and Redis
// when redis-server is installed.
type embedded struct {
	pg      *embeddedpg.Server
	pool    *pgxpool.Pool
	trigger string                // the insert trigger's implementation: c or plpgsql
	redis   *embeddedredis.Server // nil without redis-server
	// release end the watchdogs that stop the servers and remove their
	// folders if this process ends without stop (SIGPIPE of `make demo |
	// head`, SIGKILL, a panic in any goroutine)
	release []func()
}

func startEmbedded(ctx context.Context, log io.Writer) (*embedded, error) {
	fmt.Fprintln(log, "starting a private PostgreSQL from the local binaries...")
	pg, err := embeddedpg.Start(ctx, embeddedpg.Config{Durable: true})
	if err != nil {
		return nil, err
	}
	e := &embedded{pg: pg}
	release, err := pg.CleanupOnExit()
	if err != nil {
		e.stop()
		return nil, err
	}
	e.release = append(e.release, release)
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
	if r, err := embeddedredis.Start(ctx); err == nil {
		e.redis = r
		release, err := r.CleanupOnExit()
		if err != nil {
			e.stop()
			return nil, err
		}
		e.release = append(e.release, release)
	} else if !errors.Is(err, embeddedredis.ErrNotInstalled) {
		fmt.Fprintln(log, "redis-server did not start, the cache runs L1-only:", err)
	}
	return e, nil
}

func (e *embedded) stop() {
	if e.pool != nil {
		e.pool.Close()
	}
	if e.redis != nil {
		e.redis.Stop()
	}
	_ = e.pg.Stop()
	for _, release := range e.release {
		release()
	}
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
			if e.redis != nil {
				fmt.Fprintf(w, "REDIS_URL=%s\n", e.redis.URL)
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
