package workers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/auditdb/auditdb/anchor"
	"github.com/auditdb/auditdb/integrity"
	"github.com/auditdb/auditdb/monitor"
)

// AnchorIntervalDefault is how often a bundle is anchored.
const AnchorIntervalDefault = time.Hour

// AnchorRetainDefault is how long a bundle is kept under Object Lock:
// seven years (2557 days, leap days included).
const AnchorRetainDefault = 2557 * 24 * time.Hour

// AlertAnchorFailed is raised when a bundle cannot be anchored: a chain
// head that does not match its row, or a sink that holds a different
// bundle under the number reserved.
const AlertAnchorFailed = "anchor_failed"

// AnchorSetup is where and with what key bundles are anchored.
type AnchorSetup struct {
	// Signer signs bundles (AUDIT_ANCHOR_KEY). Required.
	Signer *integrity.AnchorSigner
	// Sink receives bundles (AUDIT_ANCHOR_SINK). Required.
	Sink anchor.Sink
	// Retain is how long the sink must keep a bundle (Object Lock
	// COMPLIANCE where the bucket has it). Defaults to 7 years.
	Retain time.Duration
}

// WithDefaults returns the setup with zero fields set to their defaults.
func (s AnchorSetup) WithDefaults() AnchorSetup {
	if s.Retain == 0 {
		s.Retain = AnchorRetainDefault
	}
	return s
}

// Validate names the first field that is missing or wrong.
func (s AnchorSetup) Validate() error {
	switch {
	case s.Signer == nil:
		return errors.New("AnchorSetup.Signer: required (AUDIT_ANCHOR_KEY or AUDIT_ANCHOR_KEY_FILE)")
	case s.Sink == nil:
		return errors.New("AnchorSetup.Sink: required (AUDIT_ANCHOR_SINK)")
	case s.Retain < 0:
		return errors.New("AnchorSetup.Retain: must not be negative")
	}
	return nil
}

// AnchorArgs is the anchor job: one signed bundle of every chain head,
// written to the sink (INTEGRITY.md, External anchoring).
type AnchorArgs struct{}

// Kind names the job in River.
func (AnchorArgs) Kind() string { return "auditdb_anchor" }

// InsertOpts puts the job on the suite's queue.
func (AnchorArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: Queue, MaxAttempts: 5}
}

// AnchorWorker works AnchorArgs jobs.
type AnchorWorker struct {
	river.WorkerDefaults[AnchorArgs]
	Deps *Deps
}

// Work anchors; see Deps.Anchor.
func (w *AnchorWorker) Work(ctx context.Context, _ *river.Job[AnchorArgs]) error {
	_, err := w.Deps.Anchor(ctx)
	return err
}

// AnchorReport is what one anchor did.
type AnchorReport struct {
	LogID  string `json:"log_id"`
	Bundle int64  `json:"bundle"`
	Key    string `json:"key"`
	Sink   string `json:"sink"`
	Root   string `json:"root"`
	Chains int    `json:"chains"`
	// Resumed: the bundle had been reserved by an earlier run that stopped
	// before it was recorded as written; this run finished it.
	Resumed bool `json:"resumed"`
	// Written: this run put the object; false when the sink already held
	// the same statement (a retry).
	Written     bool          `json:"written"`
	Locked      bool          `json:"locked"`
	RetainUntil time.Time     `json:"retain_until"`
	Sealed      int           `json:"sealed_first"`
	Duration    time.Duration `json:"duration_ns"`
}

// ErrNoAnchorSetup: Deps.Anchors is not set.
var ErrNoAnchorSetup = errors.New("anchor: no anchor key and sink configured (AUDIT_ANCHOR_KEY, AUDIT_ANCHOR_SINK)")

// reservation is one row of audit.anchor_bundles: everything the bundle
// file is built from.
type reservation struct {
	bundle        int64
	logID         string
	prev          string
	messageSHA256 string
	root          string
	timeUS        int64
	heads         []integrity.AnchorHead
	keyID         string
	written       bool
}

func (r *reservation) toBundle() *integrity.Bundle {
	return integrity.NewBundle(r.logID, r.bundle, r.prev, r.timeUS, r.heads)
}

// Anchor seals (when a seal key is configured, so that every anchored head
// has its checkpoint too), then writes bundle n+1 of every chain head to
// the sink.
//
// Safe to retry and to kill: the bundle is first reserved in
// audit.anchor_bundles, in one transaction under a table lock, with all it
// is built from (number, prev, time, heads); then the file, rebuilt from
// the reservation and signed (Ed25519 is deterministic), is put write-once;
// then the reservation is marked written. A run that finds the newest
// reservation unwritten finishes that one instead of reserving another, and
// a Put that finds the object there accepts it only if it is the same
// statement (anchor.Publish). So a killed worker never leaves two different
// bundles under one number.
func (d *Deps) Anchor(ctx context.Context) (*AnchorReport, error) {
	start := time.Now()
	if d.Anchors == nil {
		return nil, ErrNoAnchorSetup
	}
	setup := d.Anchors.WithDefaults()
	if err := setup.Validate(); err != nil {
		return nil, err
	}
	rep := &AnchorReport{Key: setup.Signer.ID, Sink: setup.Sink.Location()}
	if _, _, err := d.sealKeys().ActiveKey(); err == nil {
		sr, err := d.Seal(ctx, SealOptions{})
		if err != nil {
			return nil, fmt.Errorf("anchor: seal first: %w", err)
		}
		rep.Sealed = sr.Sealed()
	}

	res, resumed, err := d.reserveBundle(ctx, setup)
	if err != nil {
		return nil, err
	}
	rep.LogID, rep.Bundle, rep.Resumed, rep.Chains = res.logID, res.bundle, resumed, len(res.heads)
	if d.FaultHooks != nil && d.FaultHooks.AfterAnchorReserve != nil {
		d.FaultHooks.AfterAnchorReserve(ctx, res.bundle)
	}
	b := res.toBundle()
	if b.MessageSHA256() != res.messageSHA256 || b.Root != res.root {
		return nil, fmt.Errorf("anchor: bundle %d: the reservation in audit.anchor_bundles does not rebuild its own message (changed since?)", res.bundle)
	}
	rep.Root = b.Root
	b.Signatures = append(b.Signatures, setup.Signer.Sign(b.Message()))
	if setup.Retain > 0 {
		rep.RetainUntil = time.Now().Add(setup.Retain).UTC().Truncate(time.Second)
	}
	rep.Written, rep.Locked, err = anchor.Publish(ctx, setup.Sink, b, rep.RetainUntil)
	if err != nil {
		if errors.Is(err, anchor.ErrConflict) {
			d.raiseAnchorAlert(ctx, fmt.Sprintf("bundle %d not anchored: %v", res.bundle, err))
		}
		return nil, fmt.Errorf("anchor: bundle %d: %w", res.bundle, err)
	}
	if d.FaultHooks != nil && d.FaultHooks.AfterAnchorPut != nil {
		d.FaultHooks.AfterAnchorPut(ctx, res.bundle)
	}
	sum := sha256.Sum256(integrity.MarshalBundle(b))
	if _, err := d.Pool.Exec(ctx, query("AnchorBundleWritten"), res.bundle, hex.EncodeToString(sum[:])); err != nil {
		return nil, fmt.Errorf("anchor: bundle %d written, but not recorded (the next run records it): %w", res.bundle, err)
	}
	rep.Duration = time.Since(start)
	d.logger().InfoContext(ctx, "anchor: bundle written", "bundle", rep.Bundle, "sink", rep.Sink, "key", rep.Key,
		"written", rep.Written, "resumed", rep.Resumed, "locked", rep.Locked, "duration", rep.Duration)
	return rep, nil
}

// reserveBundle returns the newest reservation if it is unwritten (resumed),
// else reserves the next bundle over the current heads.
func (d *Deps) reserveBundle(ctx context.Context, setup AnchorSetup) (*reservation, bool, error) {
	var (
		res     *reservation
		resumed bool
	)
	err := pgx.BeginTxFunc(ctx, d.Pool, pgx.TxOptions{IsoLevel: pgx.ReadCommitted}, func(tx pgx.Tx) error {
		var logID *string
		var chains *int
		if err := tx.QueryRow(ctx, query("AnchorLogID")).Scan(&logID, &chains); err != nil {
			return fmt.Errorf("log id: %w", err)
		}
		if logID == nil || !integrity.ValidLogID(*logID) || chains == nil {
			return errors.New("audit.settings has no valid log_id or chain_count: run `auditworker migrate`")
		}
		if _, err := tx.Exec(ctx, query("AnchorBundleLock")); err != nil {
			return fmt.Errorf("lock: %w", err)
		}
		last, err := latestReservation(ctx, tx)
		if err != nil {
			return err
		}
		if last != nil && !last.written {
			res, resumed = last, true
			return nil
		}
		if last != nil && last.logID != *logID {
			return errors.New("audit.anchor_bundles names another log id than audit.settings")
		}
		// the heads, read after the lock: a later reservation never
		// anchors older heads than an earlier one
		heads, err := d.anchorHeads(ctx, tx, *chains)
		if err != nil {
			return err
		}
		res = &reservation{bundle: 1, logID: *logID, prev: integrity.ZeroHash, timeUS: time.Now().UnixMicro(),
			heads: heads, keyID: setup.Signer.ID}
		if last != nil {
			res.bundle, res.prev = last.bundle+1, last.messageSHA256
		}
		b := res.toBundle()
		res.root, res.messageSHA256 = b.Root, b.MessageSHA256()
		headsJSON, err := json.Marshal(heads)
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, query("AnchorBundleReserve"), res.bundle, res.logID, res.prev, res.messageSHA256, res.root,
			res.timeUS, string(headsJSON), res.keyID, setup.Sink.Location())
		return err
	})
	if err != nil {
		return nil, false, fmt.Errorf("anchor: reserve: %w", err)
	}
	return res, resumed, nil
}

func latestReservation(ctx context.Context, tx pgx.Tx) (*reservation, error) {
	var (
		r     reservation
		heads string
	)
	err := tx.QueryRow(ctx, query("AnchorBundleLatest")).Scan(&r.bundle, &r.logID, &r.prev, &r.messageSHA256, &r.root,
		&r.timeUS, &heads, &r.keyID, &r.written)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("latest bundle: %w", err)
	}
	if err := json.Unmarshal([]byte(heads), &r.heads); err != nil {
		return nil, fmt.Errorf("latest bundle: heads: %w", err)
	}
	return &r, nil
}

// anchorHeads reads every chain's head as a seal does; a head that does not
// match its row is not anchored (an alert is raised, as for a seal).
func (d *Deps) anchorHeads(ctx context.Context, tx pgx.Tx, chains int) ([]integrity.AnchorHead, error) {
	rows, err := tx.Query(ctx, query("ChainHeadsAnchor"))
	if err != nil {
		return nil, fmt.Errorf("read heads: %w", err)
	}
	type head struct {
		chain    int16
		seq      int64
		hash     string
		rows     int64
		rowHash  *string
		archived bool
	}
	all, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (head, error) {
		var h head
		err := r.Scan(&h.chain, &h.seq, &h.hash, &h.rows, &h.rowHash, &h.archived)
		return h, err
	})
	if err != nil {
		return nil, fmt.Errorf("read heads: %w", err)
	}
	if len(all) != chains {
		return nil, fmt.Errorf("audit.chain_heads has %d chains, audit.settings says %d", len(all), chains)
	}
	out := make([]integrity.AnchorHead, len(all))
	for i, h := range all {
		if int(h.chain) != i {
			return nil, fmt.Errorf("audit.chain_heads: chain ids are not 0..%d", chains-1)
		}
		if h.seq == 0 {
			g := integrity.Genesis(h.chain)
			out[i] = integrity.AnchorHead{Chain: h.chain, Seq: 0, Hash: hex.EncodeToString(g[:])}
			continue
		}
		if !((h.rows == 1 && h.rowHash != nil && *h.rowHash == h.hash) || (h.rows == 0 && h.archived)) {
			d.headMismatch(ctx, h.chain, h.seq, h.rows)
			return nil, fmt.Errorf("chain %d: audit.chain_heads does not match the row at its seq: not anchored", h.chain)
		}
		out[i] = integrity.AnchorHead{Chain: h.chain, Seq: h.seq, Hash: h.hash}
	}
	return out, nil
}

func (d *Deps) raiseAnchorAlert(ctx context.Context, msg string) {
	if err := d.alerter().Raise(ctx, AlertAnchorFailed, monitor.AlertCritical, msg, nil); err != nil && !errors.Is(err, context.Canceled) {
		d.logger().ErrorContext(ctx, "anchor: raise alert", "error", err)
	}
}

// NewestAnchoredBundle returns the newest bundle number audit.anchor_bundles
// records as written (0: none). Verification uses it only to notice a sink
// that lost its newest bundles; it trusts the sink, not this.
func (d *Deps) NewestAnchoredBundle(ctx context.Context) (int64, error) {
	var n int64
	if err := d.Pool.QueryRow(ctx, query("AnchorBundleNewest")).Scan(&n); err != nil {
		return 0, fmt.Errorf("anchor: newest bundle: %w", err)
	}
	return n, nil
}

// AnchorCheckOptions for Deps.CheckAnchors.
type AnchorCheckOptions struct {
	// Sink holds the bundles. Required.
	Sink anchor.Sink
	// Keys are the accepted anchor public keys. Required.
	Keys integrity.AnchorKeys
	// MinSignatures distinct known keys a bundle needs. Defaults to 1.
	MinSignatures int
	// LogID pins the log id from outside the database (AUDIT_LOG_ID).
	// Defaults to audit.settings' log_id.
	LogID string
}

// CheckAnchors reads and checks the sink's bundles of this database's log,
// for a verification run (verifier Options.Anchors). The database supplies
// only the log id (unless pinned), the chain count and the newest bundle
// number it wrote; everything anchored comes from the sink. A sink without
// a single bundle of the log is an anchor_gap: anchors were asked for, and
// there are none.
func (d *Deps) CheckAnchors(ctx context.Context, opts AnchorCheckOptions) (*integrity.AnchorReport, error) {
	var logID *string
	var chains *int
	if err := d.Pool.QueryRow(ctx, query("AnchorLogID")).Scan(&logID, &chains); err != nil {
		return nil, fmt.Errorf("anchors: log id: %w", err)
	}
	if logID == nil || chains == nil {
		return nil, errors.New("anchors: audit.settings has no log_id or chain_count: run `auditworker migrate`")
	}
	var pinned []integrity.Finding
	id := *logID
	if opts.LogID != "" && opts.LogID != id {
		pinned = append(pinned, integrity.Finding{Kind: integrity.AnchorForged,
			Detail: "audit.settings names another log_id than the one given (AUDIT_LOG_ID): the bundles of the given one are checked"})
		id = opts.LogID
	}
	newest, err := d.NewestAnchoredBundle(ctx)
	if err != nil {
		return nil, err
	}
	rep, err := anchor.Check(ctx, opts.Sink, integrity.AnchorOptions{LogID: id, Chains: *chains, Keys: opts.Keys,
		MinSignatures: opts.MinSignatures, ExpectedLast: newest})
	if err != nil {
		return nil, err
	}
	if rep.Bundles == 0 && newest == 0 {
		rep.Findings = append(rep.Findings, integrity.Finding{Kind: integrity.AnchorGap,
			Detail: fmt.Sprintf("no bundle of log %s in %s", id, opts.Sink.Location())})
	}
	rep.Findings = append(pinned, rep.Findings...)
	return rep, nil
}
