package workers

import (
	"context"
	"log/slog"
	"sync/atomic"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/auditdb/auditdb/integrity"
)

// Deps is what every job needs. One Deps is shared by all workers of a
// process; its fields are safe for concurrent use.
type Deps struct {
	// Pool is the audit database. Required.
	Pool *pgxpool.Pool
	// Replica, when set, is a streaming standby of Pool's database that
	// verification reads the log from (the verifier's Options.Source), sparing
	// the primary a full read of the log; runs are still recorded on Pool.
	// Defaults to nil: everything on Pool.
	Replica *pgxpool.Pool
	// Keys seal checkpoints, archive manifests and redactions and verify
	// them. Nil means no key: jobs that must seal refuse with
	// integrity.ErrNoSealKeys, verification runs without MAC checks.
	Keys *integrity.SealKeys
	// Anchors, when set, is the anchoring key and sink of the anchor job
	// (Deps.Anchor). Defaults to nil: no anchoring.
	Anchors *AnchorSetup
	// Logger receives structured logs. Defaults to slog.Default().
	Logger *slog.Logger
	// AfterErasure, when set, is called with the organizations an erasure
	// touched, to purge cached reads that may hold the erased values
	// (client.Enhanced.InvalidateAfterErasure). Defaults to nil.
	AfterErasure func(ctx context.Context, organizations []string) error
	// Alerter receives the alerts jobs raise (tampering found, a chain head
	// that cannot be sealed). Defaults to LogAlerter, which only logs.
	Alerter Alerter
	// Metrics records what jobs did. NewSuite sets it on its own copy of
	// Deps; nil (a Deps used outside a Suite) records nothing.
	Metrics *Metrics
	// FaultHooks inject faults for tests. Nil in production.
	FaultHooks *FaultHooks

	// reloaded holds the keys Suite.ReloadKeys put in place of Keys; a
	// pointer, so that the suite's copy of Deps and the jobs share it.
	reloaded *atomic.Pointer[integrity.SealKeys]
}

// FaultHooks are fault-injection points for tests (a worker killed in the
// middle of a seal). Production code never sets them.
type FaultHooks struct {
	// AfterSealChain runs after each chain's checkpoint is committed.
	AfterSealChain func(ctx context.Context, chainID int16)
	// AfterAnchorReserve runs after a bundle's reservation is committed,
	// before it is put in the sink.
	AfterAnchorReserve func(ctx context.Context, bundle int64)
	// AfterAnchorPut runs after a bundle is in the sink, before the
	// reservation is marked written.
	AfterAnchorPut func(ctx context.Context, bundle int64)
}

func (d *Deps) logger() *slog.Logger {
	if d.Logger == nil {
		return slog.Default()
	}
	return d.Logger
}

func (d *Deps) alerter() Alerter {
	if d.Alerter == nil {
		return LogAlerter{Logger: d.logger()}
	}
	return d.Alerter
}

// sealKeys are the keys jobs seal and verify with: Keys, or what
// Suite.ReloadKeys replaced them with.
func (d *Deps) sealKeys() *integrity.SealKeys {
	if d.reloaded != nil {
		if k := d.reloaded.Load(); k != nil {
			return k
		}
	}
	return d.Keys
}

func (d *Deps) keyring() integrity.Keyring {
	if k := d.sealKeys(); k != nil {
		return k.Ring
	}
	return nil
}
