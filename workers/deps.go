package workers

import (
	"context"
	"log/slog"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/auditdb/auditdb/internal/integrity"
)

// Deps is what every job needs. One Deps is shared by all workers of a
// process; its fields are safe for concurrent use.
type Deps struct {
	// Pool is the audit database. Required.
	Pool *pgxpool.Pool
	// Keys seal checkpoints, archive manifests and redactions and verify
	// them. Nil means no key: jobs that must seal refuse with
	// integrity.ErrNoSealKeys, verification runs without MAC checks.
	Keys *integrity.SealKeys
	// Logger receives structured logs. Defaults to slog.Default().
	Logger *slog.Logger
	// AfterErasure, when set, is called with the organizations an erasure
	// touched, to purge cached reads that may hold the erased values
	// (client.Enhanced.InvalidateAfterErasure). Defaults to nil.
	AfterErasure func(ctx context.Context, organizations []string) error
}

func (d *Deps) logger() *slog.Logger {
	if d.Logger == nil {
		return slog.Default()
	}
	return d.Logger
}
