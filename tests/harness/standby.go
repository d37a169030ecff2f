package harness

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/auditdb/auditdb/internal/embeddedpg"
	"github.com/auditdb/auditdb/internal/migrate"
)

// Replicated is a primary with auditdb migrated into its database "postgres"
// and a streaming hot standby of it, both private to one test and started
// from the local binaries whatever server the rest of the tests use, so
// that stopping or pausing the standby touches nothing else.
type Replicated struct {
	Primary, Standby *embeddedpg.Server
	// PrimaryURL and StandbyURL connect as the superuser.
	PrimaryURL, StandbyURL string
	// PrimaryPool is connected to the primary.
	PrimaryPool *pgxpool.Pool
}

// StartReplicated starts a primary, migrates it (with three months of
// partitions ahead), and starts a standby of it. Everything is stopped and
// removed when the test ends; stopping the standby earlier is allowed.
func StartReplicated(t testing.TB) *Replicated {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	primary, err := embeddedpg.Start(ctx, embeddedpg.Config{})
	if err != nil {
		t.Fatalf("harness: start primary: %v", err)
	}
	t.Cleanup(func() { _ = primary.Stop() })
	r := &Replicated{Primary: primary, PrimaryURL: primary.URL("postgres")}
	r.PrimaryPool, err = pgxpool.New(ctx, r.PrimaryURL)
	if err != nil {
		t.Fatalf("harness: connect to primary: %v", err)
	}
	t.Cleanup(r.PrimaryPool.Close)
	if _, err := migrate.Migrate(ctx, r.PrimaryPool, migrate.Options{}); err != nil {
		t.Fatalf("harness: migrate primary: %v", err)
	}
	if _, err := r.PrimaryPool.Exec(ctx, `SELECT count(*) FROM audit.ensure_partitions(3)`); err != nil {
		t.Fatalf("harness: partitions: %v", err)
	}
	r.Standby, err = StartStandby(ctx, primary)
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
	// Stop on an already stopped server fails harmlessly
	t.Cleanup(func() { _ = r.Standby.Stop() })
	r.StandbyURL = r.Standby.URL("postgres")
	return r
}

// StartStandby starts a streaming hot standby of primary and waits until
// it accepts read-only queries.
func StartStandby(ctx context.Context, primary *embeddedpg.Server) (*embeddedpg.Server, error) {
	standby, err := primary.StartStandby(ctx, embeddedpg.Config{})
	if err != nil {
		return nil, err
	}
	pool, err := pgxpool.New(ctx, standby.URL("postgres"))
	if err != nil {
		_ = standby.Stop()
		return nil, err
	}
	defer pool.Close()
	var inRecovery bool
	if err := pool.QueryRow(ctx, `SELECT pg_is_in_recovery()`).Scan(&inRecovery); err != nil || !inRecovery {
		_ = standby.Stop()
		if err == nil {
			err = errStandbyNotInRecovery
		}
		return nil, err
	}
	return standby, nil
}

var errStandbyNotInRecovery = errors.New("harness: the standby is not in recovery")
