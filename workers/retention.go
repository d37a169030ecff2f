package workers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/auditdb/auditdb/integrity"
	"github.com/auditdb/auditdb/internal/verifier"
)

// Retention archives audit rows whose retention ran out, seals a manifest
// per chain range, and only then removes the rows (INTEGRITY.md, "Retention
// and redaction").
//
// Which rows: a row is due when its "timestamp" is older than the longer of
// its own policy's retention_days and the longest retention_days of any
// active policy for its data_classification (a PHI row labelled 'minimal'
// keeps PHI's seven years). A row whose policy is unknown or inactive is
// never due.
//
// Chains and mixed policies: a manifest covers a contiguous seq range of one
// chain and the verifier resumes after it from the manifest's end hash, so
// retention archives, per chain, only the longest run of due rows that
// follows what earlier manifests cover. Rows of a short policy that sit
// behind a not-yet-due row of a longer one wait for it (the plan shows them
// as held back); nothing is ever archived out of chain order, so every
// chain stays one sequence of manifest-covered prefix and present rows, and
// the number of manifests stays one per chain per run. The newest row of
// each chain is always kept, so the verifier always has a present row to
// link the last manifest's end hash to.
//
// Partitions mixing policies or chains: audit.retention_remove drops a
// monthly partition only when every row in it is covered by the manifests
// being applied; otherwise it deletes just the covered rows (under
// auditdb.maintenance = 'retention', which the append-only guard allows).
//
// Crash safety, step by step: (1) plan the ranges; (2) write the archive
// to the sink, a write-once object store (internal/objstore: a directory, or
// an S3 bucket with a multipart upload that only its completion makes
// visible), streaming it as it is read from the database; (3) re-read it
// and verify it from its bytes; (4) insert the sealed manifests, all in one
// transaction; (5) remove the rows in one transaction. Before planning, every
// run first completes what an earlier run left: manifests whose rows are
// still present have their archive re-read and verified, then their rows are
// removed. A crash before (4) leaves an unsealed archive file and every row
// in place (the next run archives them again under a new name); a crash
// after (4) is finished by the next run; (5) is atomic.
//
// Object Lock: an archive is stored with a retain-until date, the latest
// end of retention of its rows (each row's timestamp plus its effective
// retention) or ArchiveRetain after the run, whichever is later; an S3
// bucket with Object Lock keeps it in COMPLIANCE mode until then. Rows are
// archived once their retention has ended, so today the rows' own date is
// already past and only ArchiveRetain makes a lock.

// RetentionKind is the River job kind of RetentionArgs.
const RetentionKind = "auditdb_retention"

// Defaults of RetentionConfig.
const (
	RetentionArchiveDirDefault        = "./archive"
	RetentionArchiveRetainDefault     = time.Duration(0)
	RetentionMaxRowsPerArchiveDefault = 100_000
	RetentionIntervalDefault          = time.Hour
	RetentionJobTimeoutDefault        = time.Hour
)

// RetentionConfig configures retention runs. The zero value (or nil) means
// the defaults.
type RetentionConfig struct {
	// ArchiveSink is where archives go: a directory path or
	// s3://bucket/prefix (credentials and endpoint from the AWS_* variables;
	// the CLI and worker read AUDIT_ARCHIVE_SINK). Defaults to ArchiveDir.
	ArchiveSink string
	// ArchiveDir is the archive directory used when ArchiveSink is empty
	// (AUDIT_ARCHIVE_DIR). Defaults to ./archive.
	ArchiveDir string
	// ArchiveRetain is the least Object Lock retention an archive gets,
	// counted from the run; the rows' own retention end applies when later.
	// Only an S3 bucket with Object Lock enforces it. Defaults to 0 (the
	// rows' retention only).
	ArchiveRetain time.Duration
	// MaxRowsPerArchive bounds one archive file (and so one manifest
	// transaction and one removal). A run writes as many archives as there
	// are due rows. Defaults to 100,000.
	MaxRowsPerArchive int
	// Interval is how often the periodic job runs; negative leaves it
	// unscheduled. Defaults to one hour.
	Interval time.Duration
	// JobTimeout bounds one run of the River job. Defaults to one hour.
	JobTimeout time.Duration
	// StepHook, if set, is called after each step of a run with the step's
	// name (planned, archive_partial, archive_written, archive_verified,
	// manifests_sealed, removed). Tests use it to kill a run between steps.
	StepHook func(step string)
}

// WithDefaults returns a copy with every zero field set to its default.
func (c *RetentionConfig) WithDefaults() *RetentionConfig {
	out := RetentionConfig{}
	if c != nil {
		out = *c
	}
	if out.ArchiveDir == "" {
		out.ArchiveDir = RetentionArchiveDirDefault
	}
	if out.ArchiveSink == "" {
		out.ArchiveSink = out.ArchiveDir
	}
	if out.MaxRowsPerArchive == 0 {
		out.MaxRowsPerArchive = RetentionMaxRowsPerArchiveDefault
	}
	if out.Interval == 0 {
		out.Interval = RetentionIntervalDefault
	}
	if out.JobTimeout == 0 {
		out.JobTimeout = RetentionJobTimeoutDefault
	}
	return &out
}

// Validate reports the first field that breaks its rule.
func (c *RetentionConfig) Validate() error {
	switch {
	case c.ArchiveRetain < 0:
		return errors.New("retention: ArchiveRetain: must not be negative")
	case c.MaxRowsPerArchive < 1:
		return errors.New("retention: MaxRowsPerArchive: must be at least 1")
	case c.Interval >= 0 && c.Interval < time.Second:
		return errors.New("retention: Interval: must be at least 1s, or negative to leave the job unscheduled")
	case c.JobTimeout < time.Second:
		return errors.New("retention: JobTimeout: must be at least 1s")
	}
	return nil
}

func (c *RetentionConfig) step(name string) {
	if c.StepHook != nil {
		c.StepHook(name)
	}
}

// RetentionArgs is the periodic retention job.
type RetentionArgs struct{}

// Kind implements river.JobArgs.
func (RetentionArgs) Kind() string { return RetentionKind }

// InsertOpts implements river.JobArgsWithInsertOpts: a run that failed is
// retried (every run first finishes what an earlier one left).
func (RetentionArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: Queue, MaxAttempts: 5}
}

// RetentionWorker runs RetentionArgs jobs.
type RetentionWorker struct {
	river.WorkerDefaults[RetentionArgs]
	Deps   *Deps
	Config *RetentionConfig
}

// Work implements river.Worker.
func (w *RetentionWorker) Work(ctx context.Context, _ *river.Job[RetentionArgs]) error {
	res, err := w.Deps.RunRetention(ctx, w.Config, RetentionRunOptions{})
	if errors.Is(err, ErrRetentionBusy) {
		w.Deps.logger().InfoContext(ctx, "retention: another run holds the lock; skipped")
		return nil
	}
	if err != nil {
		return err
	}
	w.Deps.logger().InfoContext(ctx, "retention: done", "archives", len(res.Archives), "rows_archived", res.RowsArchived,
		"rows_removed", res.RowsRemoved, "partitions_dropped", len(res.PartitionsDropped), "resumed_archives", res.Resumed)
	return nil
}

// Timeout implements river.Worker: runs may take longer than River's
// one-minute default.
func (w *RetentionWorker) Timeout(*river.Job[RetentionArgs]) time.Duration {
	return w.Config.WithDefaults().JobTimeout
}

// ErrRetentionBusy means another retention run holds the lock.
var ErrRetentionBusy = errors.New("retention: another run is in progress")

// retentionLockKey is the advisory lock of retention runs, in the chain lock
// namespace (chain ids are >= 0, partition DDL uses -1).
const retentionLockKey = -2

// RetentionRunOptions are per-run choices.
type RetentionRunOptions struct {
	// DryRun plans and reports without writing anything.
	DryRun bool
	// Progress, if set, is called with rows archived so far and rows planned
	// so far (it grows as further archives are planned).
	Progress func(done, total int64)
}

// ArchiveResult is one archive a run wrote (or finished).
type ArchiveResult struct {
	Name   string                   `json:"name"`
	URI    string                   `json:"uri"`
	SHA256 string                   `json:"sha256"`
	Rows   int64                    `json:"rows"`
	Ranges []integrity.ArchiveRange `json:"ranges"`
	// RetainUntil is the retention asked for (nil: none, the date had
	// passed); Locked says whether the sink enforces it (Object Lock).
	RetainUntil *time.Time `json:"retain_until,omitempty"`
	Locked      bool       `json:"locked"`
}

// RetentionResult is what a run did.
type RetentionResult struct {
	DryRun            bool            `json:"dry_run"`
	Plan              *RetentionPlan  `json:"plan,omitempty"` // dry runs only
	Archives          []ArchiveResult `json:"archives"`
	Resumed           int             `json:"resumed_archives"` // archives of earlier runs whose rows this run removed
	RowsArchived      int64           `json:"rows_archived"`
	RowsRemoved       int64           `json:"rows_removed"`
	PartitionsDropped []string        `json:"partitions_dropped"`
}

// RunRetention archives and removes every due row, one archive of at most
// cfg.MaxRowsPerArchive rows at a time, after first finishing what an
// earlier run left. It needs the active seal key (integrity.ErrNoSealKeys
// otherwise) and returns ErrRetentionBusy if another run holds the lock.
func (d *Deps) RunRetention(ctx context.Context, cfg *RetentionConfig, opts RetentionRunOptions) (*RetentionResult, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	res := &RetentionResult{DryRun: opts.DryRun, Archives: []ArchiveResult{}, PartitionsDropped: []string{}}
	if opts.DryRun {
		plan, err := d.PlanRetention(ctx, cfg)
		res.Plan = plan
		return res, err
	}
	keyID, key, err := d.sealKeys().ActiveKey()
	if err != nil {
		return nil, fmt.Errorf("retention: %w", err)
	}
	sink, err := openArchiveSink(ctx, cfg.ArchiveSink)
	if err != nil {
		return nil, fmt.Errorf("retention: %w", err)
	}
	conn, err := d.Pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("retention: %w", err)
	}
	defer conn.Release()
	var locked bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock(audit.chain_lock_namespace(), $1)`, retentionLockKey).Scan(&locked); err != nil {
		return nil, fmt.Errorf("retention: lock: %w", err)
	}
	if !locked {
		return nil, ErrRetentionBusy
	}
	defer func() {
		_, _ = conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock(audit.chain_lock_namespace(), $1)`, retentionLockKey)
	}()

	if err := d.finishPending(ctx, cfg, sink, res); err != nil {
		return res, err
	}
	var planned int64
	for {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		plan, err := d.plan(ctx, int64(cfg.MaxRowsPerArchive))
		if err != nil {
			return res, err
		}
		if plan.Rows == 0 {
			return res, nil
		}
		planned += plan.Rows
		ar, ids, err := d.archive(ctx, cfg, sink, plan, keyID, key, func(n int64) {
			if opts.Progress != nil {
				opts.Progress(res.RowsArchived+n, planned)
			}
		})
		if err != nil {
			return res, err
		}
		res.Archives = append(res.Archives, *ar)
		res.RowsArchived += ar.Rows
		if err := d.remove(ctx, cfg, ids, res); err != nil {
			return res, err
		}
	}
}

// finishPending re-verifies the archives of sealed manifests whose rows are
// still present and removes those rows.
func (d *Deps) finishPending(ctx context.Context, cfg *RetentionConfig, sink *archiveSink, res *RetentionResult) error {
	pending, err := pendingManifests(ctx, d.Pool)
	if err != nil {
		return err
	}
	byURI := map[string][]integrity.ArchiveManifest{}
	var uris []string
	for _, m := range pending {
		if _, ok := byURI[m.ArchiveURI]; !ok {
			uris = append(uris, m.ArchiveURI)
		}
		byURI[m.ArchiveURI] = append(byURI[m.ArchiveURI], m)
	}
	var errs []error
	for _, uri := range uris {
		mans := byURI[uri]
		name := ArchiveNameFromURI(uri)
		if _, err := d.checkArchive(ctx, sink, name, mans[0].ArchiveSHA256, nil, mans); err != nil {
			// rows stay; the job fails so the alert shows, the other archives go on
			d.logger().ErrorContext(ctx, "retention: archive of sealed manifests does not verify; its rows are kept",
				"archive", name, "manifests", len(mans), "error", err)
			errs = append(errs, err)
			continue
		}
		ids := make([]int64, len(mans))
		for i, m := range mans {
			ids[i] = m.ID
		}
		if err := d.remove(ctx, cfg, ids, res); err != nil {
			return err
		}
		res.Resumed++
	}
	return errors.Join(errs...)
}

// checkArchive re-reads an archive and checks it: intact from its bytes,
// the expected digest, the expected ranges (if given), and the manifests
// (if given: same ranges and digest, seals verifying under the keyring).
func (d *Deps) checkArchive(ctx context.Context, sink *archiveSink, name, digest string, ranges []integrity.ArchiveRange, mans []integrity.ArchiveManifest) (*integrity.ArchiveReport, error) {
	rc, err := sink.open(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("retention: %w", err)
	}
	defer rc.Close()
	rep, err := integrity.VerifyArchive(rc, nil)
	if err != nil {
		return nil, fmt.Errorf("retention: archive %s: %w", name, err)
	}
	if !rep.Intact() {
		return nil, fmt.Errorf("retention: archive %s: %d finding(s), first: %s", name, len(rep.Findings), rep.Findings[0].Detail)
	}
	if rep.SHA256 != digest {
		return nil, fmt.Errorf("retention: archive %s: SHA-256 differs from the one recorded", name)
	}
	if ranges != nil && !slices.Equal(rep.Header.Ranges, ranges) {
		return nil, fmt.Errorf("retention: archive %s: its ranges differ from the ones written", name)
	}
	if mans != nil {
		if fs := integrity.CompareManifests(rep.SHA256, rep.Header, mans, d.keyring()); len(fs) > 0 {
			return nil, fmt.Errorf("retention: archive %s: %s", name, fs[0].Detail)
		}
	}
	return rep, nil
}

// archiveRowQuery reads the rows of one chain range with every column, in
// the forms the archive keeps (see integrity.ArchiveRow).
const archiveRowQuery = `SELECT ` + verifier.ArchiveRowColumns + `
FROM audit.audit_log WHERE chain_id = $1 AND chain_seq BETWEEN $2 AND $3 ORDER BY chain_seq, id`

// archive runs steps 2 to 4 for one plan: write, re-read and verify, seal.
// It returns the archive and the ids of its manifests.
func (d *Deps) archive(ctx context.Context, cfg *RetentionConfig, sink *archiveSink, plan *RetentionPlan, keyID string, key []byte, progress func(int64)) (*ArchiveResult, []int64, error) {
	hdr := integrity.ArchiveHeader{CreatedAt: plan.At.UTC()}
	ranges := sha256.New()
	for _, c := range plan.Chains {
		if c.Rows == 0 {
			continue
		}
		hdr.Ranges = append(hdr.Ranges, integrity.ArchiveRange{ChainID: c.ChainID, FirstSeq: c.FirstSeq, LastSeq: c.LastSeq,
			RowCount: c.Rows, StartHash: c.StartHash, EndHash: c.EndHash})
		fmt.Fprintf(ranges, "%d:%d-%d,", c.ChainID, c.FirstSeq, c.LastSeq)
	}
	name := fmt.Sprintf("auditdb-%s-%s.jsonl.gz", plan.At.UTC().Format("20060102T150405.000000Z"), hex.EncodeToString(ranges.Sum(nil))[:12])
	ar := &ArchiveResult{Name: name, URI: sink.uri(name), Ranges: hdr.Ranges, Rows: plan.Rows}
	retainUntil, err := d.archiveRetainUntil(ctx, cfg, plan, hdr.Ranges)
	if err != nil {
		return nil, nil, err
	}
	cfg.step("planned")

	// (2) write: the archive streams from the database snapshot into the
	// sink through a pipe, so memory does not grow with its size; a failure
	// on either side stops the other and leaves no object
	pr, pw := io.Pipe()
	var digest string
	var werr error
	written := make(chan struct{})
	go func() {
		defer close(written)
		digest, werr = d.writeArchive(ctx, cfg, pw, hdr, progress)
		pw.CloseWithError(werr) // nil: the reader sees EOF
	}()
	info, perr := sink.put(ctx, name, pr, retainUntil)
	pr.CloseWithError(errSinkGaveUp) // unblocks the writer if put stopped early
	<-written
	switch {
	case werr != nil && !errors.Is(werr, errSinkGaveUp):
		return nil, nil, werr
	case perr != nil:
		return nil, nil, fmt.Errorf("retention: %w", perr)
	case werr != nil:
		return nil, nil, werr
	case info.SHA256 != digest:
		return nil, nil, fmt.Errorf("retention: archive %s: the sink stored other bytes than were written (SHA-256 differs)", name)
	}
	ar.SHA256 = digest
	if !retainUntil.IsZero() {
		ar.RetainUntil, ar.Locked = &retainUntil, info.Locked
	}
	cfg.step("archive_written")

	// (3) re-read and verify
	if _, err := d.checkArchive(ctx, sink, name, digest, hdr.Ranges, nil); err != nil {
		return nil, nil, err
	}
	cfg.step("archive_verified")

	// (4) seal: one manifest per range, all or none
	ids := make([]int64, 0, len(hdr.Ranges))
	err = pgx.BeginFunc(ctx, d.Pool, func(tx pgx.Tx) error {
		for _, rg := range hdr.Ranges {
			m := integrity.ArchiveManifest{ChainID: rg.ChainID, FirstSeq: rg.FirstSeq, LastSeq: rg.LastSeq,
				EndHash: rg.EndHash, RowCount: rg.RowCount, ArchiveURI: ar.URI, ArchiveSHA256: digest}
			m.Seal(keyID, key)
			var id int64
			if err := tx.QueryRow(ctx, `INSERT INTO audit.archive_manifests
					(chain_id, first_seq, last_seq, end_hash, row_count, archive_uri, archive_sha256, key_id, mac)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id`,
				m.ChainID, m.FirstSeq, m.LastSeq, m.EndHash, m.RowCount, m.ArchiveURI, m.ArchiveSHA256, m.KeyID, m.MAC).Scan(&id); err != nil {
				return fmt.Errorf("chain %d seq %d..%d: %w", m.ChainID, m.FirstSeq, m.LastSeq, err)
			}
			ids = append(ids, id)
		}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("retention: seal manifests: %w", err)
	}
	cfg.step("manifests_sealed")
	d.logger().InfoContext(ctx, "retention: archive sealed", "archive", name, "rows", ar.Rows, "ranges", len(hdr.Ranges))
	return ar, ids, nil
}

// errSinkGaveUp is what the archive writer sees when the sink stopped
// reading (its own error is the one reported).
var errSinkGaveUp = errors.New("retention: the archive sink stopped reading")

// archiveRetainUntil is the retention an archive asks for: the latest end
// of retention of its rows, or cfg.ArchiveRetain after the plan, whichever
// is later; zero when that is not in the future.
func (d *Deps) archiveRetainUntil(ctx context.Context, cfg *RetentionConfig, plan *RetentionPlan, ranges []integrity.ArchiveRange) (time.Time, error) {
	var policies, classes []string
	var days []int32
	for _, p := range plan.Policies {
		policies, classes, days = append(policies, p.Policy), append(classes, p.Classification), append(days, int32(p.EffectiveDays))
	}
	var until time.Time
	if cfg.ArchiveRetain > 0 {
		until = plan.At.Add(cfg.ArchiveRetain)
	}
	for _, rg := range ranges {
		var end *time.Time
		if err := d.Pool.QueryRow(ctx, archiveRowsRetentionEndSQL, rg.ChainID, rg.FirstSeq, rg.LastSeq, policies, classes, days).Scan(&end); err != nil {
			return time.Time{}, fmt.Errorf("retention: chain %d: retention end: %w", rg.ChainID, err)
		}
		if end != nil && end.After(until) {
			until = *end
		}
	}
	if !until.After(time.Now()) {
		return time.Time{}, nil
	}
	return until.UTC(), nil
}

// writeArchive streams the header's ranges from one snapshot into w and
// returns the file's digest. The ArchiveWriter checks every row's hash and
// chain link on the way, so a tampered chain fails here, before any seal.
func (d *Deps) writeArchive(ctx context.Context, cfg *RetentionConfig, w io.Writer, hdr integrity.ArchiveHeader, progress func(int64)) (string, error) {
	aw, err := integrity.NewArchiveWriter(w, hdr)
	if err != nil {
		return "", err
	}
	var written int64
	err = pgx.BeginTxFunc(ctx, d.Pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		for i, rg := range hdr.Ranges {
			rows, err := tx.Query(ctx, archiveRowQuery, rg.ChainID, rg.FirstSeq, rg.LastSeq)
			if err != nil {
				return fmt.Errorf("retention: chain %d: %w", rg.ChainID, err)
			}
			var scan verifier.ArchiveRowScanner
			_, err = pgx.ForEachRow(rows, scan.Targets(), func() error {
				if err := aw.WriteRow(scan.Row()); err != nil {
					return err
				}
				if written++; written%1024 == 0 && progress != nil {
					progress(written)
				}
				return nil
			})
			if err != nil {
				return fmt.Errorf("retention: %w", err)
			}
			if i == 0 {
				cfg.step("archive_partial")
			}
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	if progress != nil {
		progress(written)
	}
	return aw.Close()
}

// remove runs step 5: audit.retention_remove for the manifests, in one
// transaction.
func (d *Deps) remove(ctx context.Context, cfg *RetentionConfig, ids []int64, res *RetentionResult) error {
	rows, err := d.Pool.Query(ctx, `SELECT partition_name, dropped, rows_removed FROM audit.retention_remove($1)`, ids)
	if err != nil {
		return fmt.Errorf("retention: remove: %w", err)
	}
	var (
		part    string
		dropped bool
		n       int64
	)
	_, err = pgx.ForEachRow(rows, []any{&part, &dropped, &n}, func() error {
		res.RowsRemoved += n
		if dropped {
			res.PartitionsDropped = append(res.PartitionsDropped, part)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("retention: remove: %w", err)
	}
	cfg.step("removed")
	d.logger().InfoContext(ctx, "retention: rows removed", "manifests", len(ids), "rows_total", res.RowsRemoved,
		"partitions_dropped", strings.Join(res.PartitionsDropped, ","))
	return nil
}
