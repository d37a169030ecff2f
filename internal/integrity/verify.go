package integrity

import (
	"bytes"
	"cmp"
	"context"
	"crypto/hmac"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Kind is the kind of a verification finding (INTEGRITY.md, Verification).
type Kind string

// The finding kinds.
const (
	RowModified           Kind = "row_modified"
	ChainGap              Kind = "chain_gap"
	ChainFork             Kind = "chain_fork"
	CheckpointMismatch    Kind = "checkpoint_mismatch"
	CheckpointForged      Kind = "checkpoint_forged"
	TailTruncated         Kind = "tail_truncated"
	UnauthorizedRedaction Kind = "unauthorized_redaction"
)

// Finding is one problem a verification found. It names positions, never
// row contents.
type Finding struct {
	ChainID  int16  `json:"chain_id"`
	ChainSeq int64  `json:"chain_seq"`
	RowID    int64  `json:"row_id,omitempty"`
	Kind     Kind   `json:"kind"`
	Detail   string `json:"detail"`
}

// ChainResult summarises one chain of a run.
type ChainResult struct {
	ChainID      int16  `json:"chain_id"`
	Rows         int64  `json:"rows"`
	VerifiedSeq  int64  `json:"verified_seq"`
	VerifiedHash string `json:"verified_hash,omitempty"`
	Checkpoints  int    `json:"checkpoints_checked"`
	// FromSeq is the checkpoint an incremental run started after (0: the
	// chain was read from its first row).
	FromSeq  int64 `json:"from_seq,omitempty"`
	Findings int   `json:"findings"`
}

// Report is the outcome of a verification run.
type Report struct {
	RunID       int64         `json:"run_id,omitempty"`
	Status      string        `json:"status"` // intact or tampered
	Mode        string        `json:"mode"`
	StartedAt   time.Time     `json:"started_at"`
	Duration    time.Duration `json:"duration_ns"`
	RowsChecked int64         `json:"rows_checked"`
	RowsPerSec  float64       `json:"rows_per_second"`
	MACsChecked bool          `json:"macs_checked"`
	Chains      []ChainResult `json:"chains"`
	Findings    []Finding     `json:"findings"`
}

// Intact reports whether the run found nothing.
func (r *Report) Intact() bool { return len(r.Findings) == 0 }

// Keyring maps seal key ids to HMAC keys. Verification without keys checks
// everything but the MACs.
type Keyring map[string][]byte

// Options for Verify. The zero value verifies every chain, two readers per
// CPU, and records the run.
type Options struct {
	// Chains limits the run to these chain ids. Defaults to all chains.
	Chains []int16
	// Keys checks checkpoint MACs. Defaults to none (MACs not checked).
	Keys Keyring
	// Parallel is the number of chains read at once. Defaults to twice
	// GOMAXPROCS: each reader waits on PostgreSQL about as long as it hashes.
	Parallel int
	// NoRecord skips writing the run to audit.verification_runs.
	NoRecord bool
	// SealKeyID names the key of Keys that seals the recorded run (the
	// active seal key): a MAC over its result (RunMAC) that CheckRunSeals
	// checks, so that editing audit.verification_runs cannot make a
	// tampered log look verified. Defaults to "": the run is recorded
	// unsealed.
	SealKeyID string
	// AbandonAfter, when positive and the run is recorded, first closes as
	// failed ("abandoned") the runs still "running" that started longer
	// ago than this: runs whose verifier stopped without a result (a killed
	// worker). A caller whose runs cannot outlive a bound (a job timeout)
	// passes that bound. A run closed so that was still going writes its
	// own result over the mark when it ends. Defaults to 0: none closed.
	AbandonAfter time.Duration
	// Source, when set, is where the log is read: a streaming standby of
	// the database pool writes to, so that a full verification reads its
	// rows there instead of on the primary. The run is still recorded, and
	// the previous runs read, through pool. A standby verifies the log as
	// far as it has replayed; its long reads can be cancelled by recovery
	// conflicts unless it runs with hot_standby_feedback on. Such a run
	// trusts the standby, which whoever controls it could make show an
	// untampered copy: keep some runs on the primary. Defaults to pool.
	Source *pgxpool.Pool
	// Incremental starts each chain after a checkpoint instead of at its
	// first row: the newest checkpoint at or below the seq that the chain's
	// newest finished run verified intact, provided its MAC verifies and the
	// row at its seq still carries its hash. The
	// chain hash is seeded from that checkpoint. A chain without such a
	// checkpoint, or whose newest run found tampering, is read in full.
	// Rows before the seed are not re-read: full runs cover them. Needs
	// Keys (ErrIncrementalNeedsKeys): without the MAC, the checkpoint to
	// start from and the runs that verified it are only rows anyone with
	// write access could have written. Defaults to false (full).
	Incremental bool
	// Progress, if set, is called with rows done so far and the rows expected,
	// from one goroutine, at most every ProgressEvery. Defaults to none.
	Progress      func(done, total int64)
	ProgressEvery time.Duration
}

// ErrIncrementalNeedsKeys: an incremental run trusts a checkpoint only when
// its MAC verifies.
var ErrIncrementalNeedsKeys = errors.New("verify: an incremental run needs the seal keys (AUDIT_SEAL_KEYS...) to trust the checkpoint it starts from; run a full verification without them")

// Verify re-computes every row's commitment, row hash and chain link of the
// chosen chains, checks checkpoints and coverage, and returns the report.
// An error means the run could not be done (database unreachable...), not
// that tampering was found: that is in the report.
func Verify(ctx context.Context, pool *pgxpool.Pool, opts Options) (*Report, error) {
	if opts.Incremental && len(opts.Keys) == 0 {
		return nil, ErrIncrementalNeedsKeys
	}
	if opts.SealKeyID != "" && opts.Keys[opts.SealKeyID] == nil {
		return nil, fmt.Errorf("verify: SealKeyID: key %q is not in Keys", opts.SealKeyID)
	}
	start := time.Now()
	mode := "full"
	if opts.Incremental {
		mode = "incremental"
	}
	rep := &Report{Status: "intact", Mode: mode, StartedAt: start, MACsChecked: len(opts.Keys) > 0,
		Chains: []ChainResult{}, Findings: []Finding{}}

	type chainInfo struct {
		id       int16
		head     int64
		verified int64 // incremental: seq the newest run verified intact
	}
	src := cmp.Or(opts.Source, pool)
	if opts.Source != nil {
		if err := CheckStandby(ctx, pool, opts.Source); err != nil {
			return nil, err
		}
	}
	var chains []chainInfo
	rows, err := src.Query(ctx, `SELECT chain_id, head_seq FROM audit.chain_heads ORDER BY chain_id`)
	if err != nil {
		return nil, fmt.Errorf("verify: read chains: %w", err)
	}
	var total int64
	for rows.Next() {
		var c chainInfo
		if err := rows.Scan(&c.id, &c.head); err != nil {
			return nil, err
		}
		if len(opts.Chains) > 0 && !slices.Contains(opts.Chains, c.id) {
			continue
		}
		chains = append(chains, c)
		total += c.head
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("verify: read chains: %w", err)
	}
	if opts.Incremental {
		verified, err := verifiedUpTo(ctx, pool)
		if err != nil {
			return nil, err
		}
		for i := range chains {
			chains[i].verified = min(verified[chains[i].id], chains[i].head)
			total -= chains[i].verified
		}
	}
	for _, want := range opts.Chains {
		if !slices.ContainsFunc(chains, func(c chainInfo) bool { return c.id == want }) {
			return nil, fmt.Errorf("verify: chain %d: no such chain (see audit.chain_heads)", want)
		}
	}

	var runID int64
	if !opts.NoRecord {
		if opts.AbandonAfter > 0 {
			if _, err := pool.Exec(ctx, `UPDATE audit.verification_runs
				SET status = 'failed', finished_at = now(), error = $2
				WHERE status = 'running' AND started_at < now() - make_interval(secs => $1)`,
				opts.AbandonAfter.Seconds(), "abandoned: no result within "+opts.AbandonAfter.String()+" (its verifier stopped)"); err != nil {
				return nil, fmt.Errorf("verify: close abandoned runs: %w", err)
			}
		}
		ids := make([]int32, len(chains))
		for i, c := range chains {
			ids[i] = int32(c.id)
		}
		if err := pool.QueryRow(ctx, `INSERT INTO audit.verification_runs (mode, chains) VALUES ($1, $2) RETURNING id`, mode, ids).Scan(&runID); err != nil {
			return nil, fmt.Errorf("verify: record run: %w", err)
		}
		rep.RunID = runID
	}

	parallel := opts.Parallel
	if parallel <= 0 {
		parallel = 2 * runtime.GOMAXPROCS(0)
	}
	var done atomic.Int64
	stopProgress := make(chan struct{})
	var progressWG sync.WaitGroup
	if opts.Progress != nil {
		every := opts.ProgressEvery
		if every <= 0 {
			every = 200 * time.Millisecond
		}
		progressWG.Add(1)
		go func() {
			defer progressWG.Done()
			t := time.NewTicker(every)
			defer t.Stop()
			for {
				select {
				case <-t.C:
					opts.Progress(done.Load(), total)
				case <-stopProgress:
					opts.Progress(done.Load(), total)
					return
				}
			}
		}()
	}

	results := make([]chainOutcome, len(chains))
	work := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < min(parallel, max(len(chains), 1)); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				results[i] = verifyChain(ctx, src, chains[i].id, opts.Keys, chains[i].verified, &done)
			}
		}()
	}
	for i := range chains {
		work <- i
	}
	close(work)
	wg.Wait()
	close(stopProgress)
	progressWG.Wait()

	var runErr error
	if len(opts.Chains) == 0 && len(chains) > 0 {
		stray, err := strayChains(ctx, src, chains[0].id, chains[len(chains)-1].id)
		if err != nil {
			runErr = err
		}
		rep.Findings = append(rep.Findings, stray...)
	}
	for _, r := range results {
		if r.err != nil {
			runErr = errors.Join(runErr, r.err)
			continue
		}
		rep.Chains = append(rep.Chains, r.ChainResult)
		rep.Findings = append(rep.Findings, r.findings...)
		rep.RowsChecked += r.Rows
	}
	rep.Duration = time.Since(start)
	if secs := rep.Duration.Seconds(); secs > 0 {
		rep.RowsPerSec = float64(rep.RowsChecked) / secs
	}
	if len(rep.Findings) > 0 {
		rep.Status = "tampered"
	}
	if runErr != nil {
		if runID != 0 {
			_, _ = pool.Exec(context.WithoutCancel(ctx), `UPDATE audit.verification_runs SET status = 'failed', finished_at = now(), error = $2 WHERE id = $1`, runID, runErr.Error())
		}
		return nil, fmt.Errorf("verify: %w", runErr)
	}
	if runID != 0 {
		if err := recordRun(ctx, pool, runID, rep, opts.SealKeyID, opts.Keys[opts.SealKeyID]); err != nil {
			return nil, fmt.Errorf("verify: record run: %w", err)
		}
	}
	return rep, nil
}

// ErrNotStandby: Options.Source is not a hot standby of the database
// verified, so its rows say nothing about that database.
var ErrNotStandby = errors.New("verify: the source is not a standby of the database")

// CheckStandby checks that src is in recovery, replicates the same cluster
// as pool (their system identifiers match) and serves the same database:
// what Verify requires of Options.Source.
func CheckStandby(ctx context.Context, pool, src *pgxpool.Pool) error {
	const q = `SELECT pg_is_in_recovery(), (SELECT system_identifier FROM pg_control_system()), current_database()`
	var (
		primaryRecovery, standbyRecovery bool
		primaryID, standbyID             int64
		primaryDB, standbyDB             string
	)
	if err := pool.QueryRow(ctx, q).Scan(&primaryRecovery, &primaryID, &primaryDB); err != nil {
		return fmt.Errorf("verify: identify the database: %w", err)
	}
	if err := src.QueryRow(ctx, q).Scan(&standbyRecovery, &standbyID, &standbyDB); err != nil {
		return fmt.Errorf("verify: identify the source: %w", err)
	}
	switch {
	case !standbyRecovery:
		return fmt.Errorf("%w: it is not in recovery", ErrNotStandby)
	case standbyID != primaryID:
		return fmt.Errorf("%w: it replicates another cluster (system identifier %d, not %d)", ErrNotStandby, standbyID, primaryID)
	case standbyDB != primaryDB:
		return fmt.Errorf("%w: it serves database %q, not %q", ErrNotStandby, standbyDB, primaryDB)
	}
	return nil
}

// strayChains finds rows whose chain_id has no head in audit.chain_heads: a
// chain the trigger never wrote, so every such row was put there around it.
// (Such a chain could even be made to verify from its genesis hash, so its
// mere presence is the finding.) The chain ids form a range: the rows below
// and above it are two range scans of the (chain_id, chain_seq) index, with
// the bounds as values so that the planner sees them (an OR against a
// subquery was a sequential scan of the whole log, ~0.3 s per 500k rows, on
// every incremental run).
func strayChains(ctx context.Context, pool *pgxpool.Pool, lo, hi int16) ([]Finding, error) {
	var out []Finding
	err := pgx.BeginTxFunc(ctx, pool, pgx.TxOptions{AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SET LOCAL enable_seqscan = off`); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT chain_id, min(chain_seq), min(id), count(*) FROM (
			SELECT l.chain_id, l.chain_seq, l.id FROM audit.audit_log l WHERE l.chain_id < $1
			UNION ALL
			SELECT l.chain_id, l.chain_seq, l.id FROM audit.audit_log l WHERE l.chain_id > $2) s
			GROUP BY chain_id ORDER BY chain_id`, lo, hi)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (Finding, error) {
			var f Finding
			var n int64
			err := r.Scan(&f.ChainID, &f.ChainSeq, &f.RowID, &n)
			f.Kind = RowModified
			f.Detail = fmt.Sprintf("%d row(s) in chain %d, which audit.chain_heads does not have", n, f.ChainID)
			return f, err
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("stray chains: %w", err)
	}
	return out, nil
}

// verifiedUpTo returns, per chain, the seq that the newest finished run
// covering the chain verified with no finding on it. A chain whose newest run
// found tampering is left out, so it is read in full until a run finds it
// intact again.
func verifiedUpTo(ctx context.Context, pool *pgxpool.Pool) (map[int16]int64, error) {
	rows, err := pool.Query(ctx, `SELECT chain_id, verified_seq FROM audit.integrity_status
		WHERE last_run_id IS NOT NULL AND findings = 0 AND verified_seq > 0`)
	if err != nil {
		return nil, fmt.Errorf("verify: previous runs: %w", err)
	}
	m := map[int16]int64{}
	var (
		id  int16
		seq int64
	)
	_, err = pgx.ForEachRow(rows, []any{&id, &seq}, func() error { m[id] = seq; return nil })
	if err != nil {
		return nil, fmt.Errorf("verify: previous runs: %w", err)
	}
	return m, nil
}

// incrementalSeed picks the checkpoint an incremental run of a chain starts
// after: the newest at or below verified. It is used only when its MAC
// verifies under keys and the row at its seq is still
// there with the checkpoint's hash; anything else returns nil and the chain
// is read in full, which reports precisely whatever is wrong.
func incrementalSeed(ctx context.Context, tx pgx.Tx, chainID int16, verified int64, keys Keyring) (*checkpoint, error) {
	var cp checkpoint
	err := tx.QueryRow(ctx, `SELECT chain_seq, hash, sealed_at, key_id, mac FROM audit.integrity_checkpoints
		WHERE chain_id = $1 AND chain_seq <= $2 ORDER BY chain_seq DESC, id DESC LIMIT 1`, chainID, verified).
		Scan(&cp.seq, &cp.hash, &cp.sealedAt, &cp.keyID, &cp.mac)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("chain %d: incremental seed: %w", chainID, err)
	}
	if cp.sealVerifies(chainID, keys) != sealValid { // Verify refuses incremental runs without keys
		return nil, nil
	}
	rows, err := tx.Query(ctx, `SELECT hash FROM audit.audit_log WHERE chain_id = $1 AND chain_seq = $2`, chainID, cp.seq)
	if err != nil {
		return nil, fmt.Errorf("chain %d: incremental seed: %w", chainID, err)
	}
	hashes, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("chain %d: incremental seed: %w", chainID, err)
	}
	if len(hashes) != 1 || hashes[0] != cp.hash {
		return nil, nil
	}
	return &cp, nil
}

func recordRun(ctx context.Context, pool *pgxpool.Pool, runID int64, rep *Report, keyID string, key []byte) error {
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if len(rep.Findings) > 0 {
			_, err := tx.CopyFrom(ctx, pgx.Identifier{"audit", "verification_findings"},
				[]string{"run_id", "chain_id", "chain_seq", "row_id", "kind", "detail"},
				pgx.CopyFromSlice(len(rep.Findings), func(i int) ([]any, error) {
					f := rep.Findings[i]
					var rowID any
					if f.RowID != 0 {
						rowID = f.RowID
					}
					return []any{runID, f.ChainID, f.ChainSeq, rowID, string(f.Kind), f.Detail}, nil
				}))
			if err != nil {
				return err
			}
		}
		perChain := map[string]ChainResult{}
		for _, c := range rep.Chains {
			perChain[fmt.Sprint(c.ChainID)] = c
		}
		_, err := tx.Exec(ctx, `UPDATE audit.verification_runs
			SET status = $2, finished_at = now(), rows_checked = $3, findings_count = $4, chain_results = $5
			WHERE id = $1`, runID, rep.Status, rep.RowsChecked, len(rep.Findings), perChain)
		if err != nil || keyID == "" {
			return err
		}
		return sealRun(ctx, tx, runID, rep, keyID, key)
	})
}

type checkpoint struct {
	seq      int64
	hash     string
	sealedAt time.Time
	keyID    string
	mac      string
}

type manifest struct {
	first, last int64
	endHash     string
}

type chainOutcome struct {
	ChainResult
	findings []Finding
	err      error
}

// pgEpochUnixUS is PostgreSQL's timestamp epoch (2000-01-01) in Unix microseconds.
const pgEpochUnixUS = 946684800000000

// rowColumns are the type OIDs rowQuery returns, column by column, all of
// which must arrive in binary: int8 8 bytes, timestamptz int64 microseconds
// since 2000, int4 4 bytes, text and bytea as their bytes.
var rowColumns = []uint32{
	pgtype.Int8OID, pgtype.Int8OID, pgtype.TimestamptzOID, pgtype.TimestamptzOID,
	pgtype.TextOID, pgtype.TextOID, pgtype.TextOID, pgtype.TextOID, pgtype.TextOID, pgtype.TextOID,
	pgtype.TextOID, pgtype.TextOID, pgtype.TextOID, pgtype.Int4OID, pgtype.TextOID, pgtype.TextOID,
	pgtype.TextOID, pgtype.TextOID, pgtype.TextOID, pgtype.TextOID, pgtype.ByteaOID, pgtype.ByteaOID,
	pgtype.TextOID,
}

func checkRowFormats(fields []pgconn.FieldDescription) error {
	if len(fields) != len(rowColumns) {
		return fmt.Errorf("row query returned %d columns, want %d", len(fields), len(rowColumns))
	}
	for i, f := range fields {
		if f.DataTypeOID != rowColumns[i] || f.Format != pgx.BinaryFormatCode {
			return fmt.Errorf("row query column %s: type %d format %d, want type %d in binary", f.Name, f.DataTypeOID, f.Format, rowColumns[i])
		}
	}
	return nil
}

// rowQuery streams a chain in chain_seq order. source_ip goes through
// abbrev(), which is the inet output form INTEGRITY.md fixes; details
// through its text form.
const rowQuery = `SELECT id, chain_seq, "timestamp", recorded_at, action, status, principal_type,
	organization_id, target_resource_type, event_version, correlation_id, data_classification,
	retention_policy, processing_latency, ttl, principal_id, target_resource_id, abbrev(source_ip),
	outcome_description, details::text, pii_salt, pii_commitment, hash
FROM audit.audit_log WHERE chain_id = $1`

const rowOrder = ` ORDER BY chain_seq, id`

func verifyChain(ctx context.Context, pool *pgxpool.Pool, chainID int16, keys Keyring, verified int64, done *atomic.Int64) (out chainOutcome) {
	out.ChainID = chainID
	out.err = pgx.BeginTxFunc(ctx, pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		// Stream the chain in index order. Left to itself the planner sorts
		// a parallel sequential scan of the whole table for each chain (one
		// chain is 1/16 of the rows): 16 scans and sorts spilling to disk,
		// measured 2x slower than walking the (chain_id, chain_seq, id) index,
		// whose rows are mostly contiguous because a transaction holds its
		// chain while it writes.
		if _, err := tx.Exec(ctx, `SET LOCAL enable_sort = off; SET LOCAL enable_seqscan = off;
			SET LOCAL enable_bitmapscan = off; SET LOCAL max_parallel_workers_per_gather = 0`); err != nil {
			return fmt.Errorf("chain %d: %w", chainID, err)
		}
		var head int64
		if err := tx.QueryRow(ctx, `SELECT head_seq FROM audit.chain_heads WHERE chain_id = $1`, chainID).Scan(&head); err != nil {
			return fmt.Errorf("chain %d: head: %w", chainID, err)
		}
		var seed *checkpoint
		if verified > 0 {
			var err error
			if seed, err = incrementalSeed(ctx, tx, chainID, verified, keys); err != nil {
				return err
			}
		}
		var from int64
		if seed != nil {
			from = seed.seq
		}
		cps, err := loadCheckpoints(ctx, tx, chainID, from)
		if err != nil {
			return err
		}
		mans, forged, err := loadManifests(ctx, tx, chainID, keys)
		if err != nil {
			return err
		}
		redacted, err := loadRedactions(ctx, tx, chainID, from)
		if err != nil {
			return err
		}
		cv := chainVerifier{chainID: chainID, cps: cps, mans: mans, redacted: redacted, keys: keys, prev: Genesis(chainID), findings: forged}
		query, args := rowQuery+rowOrder, []any{pgx.QueryResultFormats{pgx.BinaryFormatCode}, chainID}
		if seed != nil {
			// the seed's hash is authenticated (MAC) and was verified by an
			// earlier run: the chain continues from it
			if _, err := hex.Decode(cv.prev[:], []byte(seed.hash)); err != nil {
				return fmt.Errorf("chain %d: checkpoint hash: %w", chainID, err)
			}
			cv.lastSeq = seed.seq
			out.FromSeq = seed.seq
			query, args = rowQuery+` AND chain_seq > $2`+rowOrder, append(args, seed.seq)
		}
		rows, err := tx.Query(ctx, query, args...)
		if err != nil {
			return fmt.Errorf("chain %d: read rows: %w", chainID, err)
		}
		defer rows.Close()
		if err := checkRowFormats(rows.FieldDescriptions()); err != nil {
			return fmt.Errorf("chain %d: %w", chainID, err)
		}
		var (
			r     Row
			batch int64
		)
		r.ChainID = chainID
		for rows.Next() {
			// Straight from the wire, no copies: see checkRowFormats for the
			// binary forms. Row is valid until the next rows.Next.
			raw := rows.RawValues()
			r.ID = int64(binary.BigEndian.Uint64(raw[0]))
			r.ChainSeq = int64(binary.BigEndian.Uint64(raw[1]))
			r.TimestampUS = int64(binary.BigEndian.Uint64(raw[2])) + pgEpochUnixUS
			r.RecordedAtUS = int64(binary.BigEndian.Uint64(raw[3])) + pgEpochUnixUS
			r.Action, r.Status = raw[4], raw[5]
			r.PrincipalType, r.OrganizationID, r.TargetResourceType = raw[6], raw[7], raw[8]
			r.EventVersion, r.CorrelationID = raw[9], raw[10]
			r.DataClassification, r.RetentionPolicy = raw[11], raw[12]
			r.HasLatency = raw[13] != nil
			if r.HasLatency {
				r.ProcessingLatency = int32(binary.BigEndian.Uint32(raw[13]))
			}
			r.TTL, r.PrincipalID, r.TargetResourceID = raw[14], raw[15], raw[16]
			r.SourceIP, r.OutcomeDescription, r.Details = raw[17], raw[18], raw[19]
			r.PIISalt, r.PIICommitment = raw[20], raw[21]
			cv.row(&r, raw[22])
			if batch++; batch == 1024 {
				done.Add(batch)
				batch = 0
			}
		}
		done.Add(batch)
		if err := rows.Err(); err != nil {
			return fmt.Errorf("chain %d: read rows: %w", chainID, err)
		}
		cv.finish(head)
		out.Rows = cv.rows
		out.VerifiedSeq = cv.lastSeq
		if cv.lastSeq > 0 {
			out.VerifiedHash = hex.EncodeToString(cv.prev[:])
		}
		out.Checkpoints = cv.cpChecked
		out.findings = cv.findings
		out.Findings = len(cv.findings)
		return nil
	})
	return out
}

// loadCheckpoints returns the chain's checkpoints after seq from, in order.
func loadCheckpoints(ctx context.Context, tx pgx.Tx, chainID int16, from int64) ([]checkpoint, error) {
	rows, err := tx.Query(ctx, `SELECT chain_seq, hash, sealed_at, key_id, mac FROM audit.integrity_checkpoints
		WHERE chain_id = $1 AND chain_seq > $2 ORDER BY chain_seq, id`, chainID, from)
	if err != nil {
		return nil, fmt.Errorf("chain %d: checkpoints: %w", chainID, err)
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (checkpoint, error) {
		var c checkpoint
		err := row.Scan(&c.seq, &c.hash, &c.sealedAt, &c.keyID, &c.mac)
		return c, err
	})
}

func loadManifests(ctx context.Context, tx pgx.Tx, chainID int16, keys Keyring) ([]manifest, []Finding, error) {
	all, err := LoadArchiveManifests(ctx, tx, `WHERE chain_id = $1`, chainID)
	if err != nil {
		return nil, nil, fmt.Errorf("chain %d: %w", chainID, err)
	}
	// A manifest whose seal does not verify covers nothing: the seqs it
	// claims are then reported as chain_gap, besides the forged seal itself.
	var mans []manifest
	var findings []Finding
	for _, m := range all {
		if len(keys) > 0 && !m.SealVerifies(keys) {
			findings = append(findings, Finding{ChainID: chainID, ChainSeq: m.FirstSeq, Kind: CheckpointForged,
				Detail: fmt.Sprintf("archive manifest %d (chain_seq %d..%d) seal does not verify under key %s", m.ID, m.FirstSeq, m.LastSeq, m.KeyID)})
			continue
		}
		mans = append(mans, manifest{first: m.FirstSeq, last: m.LastSeq, endHash: m.EndHash})
	}
	return mans, findings, nil
}

// sealedRedaction is a redaction record of one row.
type sealedRedaction struct {
	seq         int64
	createdAtUS int64
	reason      string
	keyID, mac  string
}

// loadRedactions returns the chain's redaction records by row id, of rows
// after seq from (those the run reads).
func loadRedactions(ctx context.Context, tx pgx.Tx, chainID int16, from int64) (map[int64][]sealedRedaction, error) {
	rows, err := tx.Query(ctx, `SELECT row_id, chain_seq, created_at, reason, key_id, mac FROM audit.redactions
		WHERE chain_id = $1 AND chain_seq > $2`, chainID, from)
	if err != nil {
		return nil, fmt.Errorf("chain %d: redactions: %w", chainID, err)
	}
	m := map[int64][]sealedRedaction{}
	var (
		rowID     int64
		createdAt time.Time
		r         sealedRedaction
	)
	_, err = pgx.ForEachRow(rows, []any{&rowID, &r.seq, &createdAt, &r.reason, &r.keyID, &r.mac}, func() error {
		r.createdAtUS = createdAt.UnixMicro()
		m[rowID] = append(m[rowID], r)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("chain %d: redactions: %w", chainID, err)
	}
	return m, nil
}

// redactionProblem says why a row without its salt is not covered by a
// sealed redaction record; "" when it is. Without keys a record's presence
// is all that can be checked; with keys one of the row's records must
// verify over the PII values the row holds now.
func (v *chainVerifier) redactionProblem(r *Row) string {
	recs := v.redacted[r.ID]
	if len(recs) == 0 {
		return "pii_salt is missing and no redaction record covers the row"
	}
	if len(v.keys) == 0 {
		return ""
	}
	after := v.enc.RemainingPII(r)
	for _, rec := range recs {
		key, ok := v.keys[rec.keyID]
		if ok && rec.seq == r.ChainSeq &&
			hmac.Equal([]byte(RedactionMAC(key, r.ID, v.chainID, rec.seq, rec.createdAtUS, after, rec.reason)), []byte(rec.mac)) {
			return ""
		}
	}
	return "pii_salt is missing and no redaction record's seal verifies over the PII values the row now holds"
}

// chainVerifier walks one chain's rows in order. After a bad row it resumes
// from the row's stored hash, so one modified row is one finding rather than
// a cascade; a rewrite of everything after a row is what checkpoints catch.
type chainVerifier struct {
	chainID  int16
	cps      []checkpoint
	cpIdx    int
	mans     []manifest
	redacted map[int64][]sealedRedaction
	keys     Keyring

	enc       Encoder
	prev      [32]byte // chain hash after lastSeq
	lastSeq   int64
	rows      int64
	cpChecked int
	findings  []Finding
}

func (v *chainVerifier) add(seq, rowID int64, kind Kind, detail string) {
	v.findings = append(v.findings, Finding{ChainID: v.chainID, ChainSeq: seq, RowID: rowID, Kind: kind, Detail: detail})
}

func (v *chainVerifier) row(r *Row, storedHex []byte) {
	v.rows++
	var stored [32]byte
	storedOK := len(storedHex) == 64
	if storedOK {
		_, err := hex.Decode(stored[:], storedHex)
		storedOK = err == nil
	}

	if r.ChainSeq == v.lastSeq && v.lastSeq > 0 {
		v.add(r.ChainSeq, r.ID, ChainFork, "a second row with this chain_seq")
		return
	}
	linked := true
	if r.ChainSeq != v.lastSeq+1 {
		linked = v.coverGap(r.ChainSeq)
	}
	prev := v.prev

	commitment := r.PIICommitment
	modified := ""
	if r.PIISalt != nil {
		c := v.enc.PIICommitment(r, r.PIISalt)
		if !bytes.Equal(c[:], r.PIICommitment) {
			modified = "pii values or pii_commitment differ from the commitment"
			commitment = c[:]
		}
	} else if problem := v.redactionProblem(r); problem != "" {
		v.add(r.ChainSeq, r.ID, UnauthorizedRedaction, problem)
	}
	rh := v.enc.RowHash(r, commitment)
	h := ChainHash(prev, rh)
	if modified == "" && linked && (!storedOK || h != stored) {
		modified = "stored hash differs from the recomputed one"
	}
	if modified != "" {
		v.add(r.ChainSeq, r.ID, RowModified, modified)
	}
	if storedOK {
		v.prev = stored
	} else {
		v.prev = h
	}
	v.lastSeq = r.ChainSeq
	v.checkpointsUpTo(r.ChainSeq)
}

// coverGap handles seqs lastSeq+1 .. next-1 missing before a row: archive
// manifests may cover them (the chain then continues from the manifest's end
// hash, which becomes v.prev); otherwise each uncovered stretch is a
// chain_gap and the next row's link cannot be checked. It reports whether the
// next row's link can be checked.
func (v *chainVerifier) coverGap(next int64) bool {
	from := v.lastSeq + 1
	if next < from {
		v.add(next, 0, RowModified, "chain_seq out of order")
		return false
	}
	linked := true
	for from < next {
		m, ok := v.manifestAt(from)
		if !ok {
			to := next - 1
			for _, mm := range v.mans {
				if mm.first > from && mm.first <= to {
					to = mm.first - 1
				}
			}
			v.add(from, 0, ChainGap, fmt.Sprintf("chain_seq %d..%d missing and no archive manifest covers them", from, to))
			linked = false
			from = to + 1
			continue
		}
		end := min(m.last, next-1)
		if end == m.last {
			v.crossManifest(m)
		} else {
			linked = false
			v.lastSeq = end
			v.checkpointsUpTo(end)
		}
		from = end + 1
	}
	if !linked {
		v.lastSeq = next - 1
	}
	return linked
}

// crossManifest continues the chain past the archived range m: from its
// recorded end hash, checking the checkpoints inside it.
func (v *chainVerifier) crossManifest(m manifest) {
	if b, err := hex.DecodeString(m.endHash); err == nil && len(b) == 32 {
		copy(v.prev[:], b)
	}
	v.lastSeq = m.last
	v.checkpointsUpTo(m.last)
}

func (v *chainVerifier) manifestAt(seq int64) (manifest, bool) {
	i := sort.Search(len(v.mans), func(i int) bool { return v.mans[i].last >= seq })
	if i < len(v.mans) && v.mans[i].first <= seq {
		return v.mans[i], true
	}
	return manifest{}, false
}

// checkpointsUpTo checks every checkpoint at or below seq. One at exactly
// seq is compared with the chain hash there; one that fell inside a gap was
// already reported as the gap.
func (v *chainVerifier) checkpointsUpTo(seq int64) {
	for v.cpIdx < len(v.cps) && v.cps[v.cpIdx].seq <= seq {
		cp := v.cps[v.cpIdx]
		v.cpIdx++
		v.checkMAC(cp)
		if cp.seq != seq {
			continue
		}
		v.cpChecked++
		if hex.EncodeToString(v.prev[:]) != cp.hash {
			v.add(cp.seq, 0, CheckpointMismatch, "checkpoint hash differs from the chain at its seq (key "+cp.keyID+")")
		}
	}
}

func (v *chainVerifier) checkMAC(cp checkpoint) {
	if len(v.keys) == 0 {
		return
	}
	switch cp.sealVerifies(v.chainID, v.keys) {
	case sealUnknownKey:
		v.add(cp.seq, 0, CheckpointForged, "checkpoint names key id "+cp.keyID+", which is not in the keyring")
	case sealWrongMAC:
		v.add(cp.seq, 0, CheckpointForged, "checkpoint MAC does not verify under key "+cp.keyID)
	}
}

// A checkpoint's seal, checked under a keyring.
type sealCheck int

const (
	sealValid sealCheck = iota
	sealUnknownKey
	sealWrongMAC
)

// sealVerifies checks cp's MAC under the keyring's key of its key id.
func (cp checkpoint) sealVerifies(chainID int16, keys Keyring) sealCheck {
	key, ok := keys[cp.keyID]
	if !ok {
		return sealUnknownKey
	}
	if !hmac.Equal([]byte(CheckpointMAC(key, chainID, cp.seq, cp.hash, cp.sealedAt.UnixMicro())), []byte(cp.mac)) {
		return sealWrongMAC
	}
	return sealValid
}

// finish reports what should exist after the last row: checkpoints beyond
// it, or a head row ahead of it, mean rows were removed from the tail.
func (v *chainVerifier) finish(headSeq int64) {
	// Manifests may cover the chain's end: archived rows with no row left
	// after them, which coverGap (run before each row) never saw.
	for {
		m, ok := v.manifestAt(v.lastSeq + 1)
		if !ok {
			break
		}
		v.crossManifest(m)
	}
	for v.cpIdx < len(v.cps) {
		cp := v.cps[v.cpIdx]
		v.cpIdx++
		v.checkMAC(cp)
		if m, ok := v.manifestAt(cp.seq); ok && m.last == cp.seq {
			v.cpChecked++
			if m.endHash != cp.hash {
				v.add(cp.seq, 0, CheckpointMismatch, "checkpoint hash differs from the archive manifest's end hash")
			}
			continue
		}
		v.add(cp.seq, 0, TailTruncated, fmt.Sprintf("a checkpoint seals chain_seq %d but the chain ends at %d", cp.seq, v.lastSeq))
		// one finding for the missing tail; later checkpoints say the same
		for v.cpIdx < len(v.cps) {
			v.checkMAC(v.cps[v.cpIdx])
			v.cpIdx++
		}
	}
	if headSeq > v.lastSeq {
		if m, ok := v.manifestAt(headSeq); !ok || m.last != headSeq {
			alreadyReported := false
			for _, f := range v.findings {
				alreadyReported = alreadyReported || f.Kind == TailTruncated
			}
			if !alreadyReported {
				v.add(v.lastSeq+1, 0, TailTruncated, fmt.Sprintf("audit.chain_heads says the chain reached %d but its rows end at %d", headSeq, v.lastSeq))
			}
		}
	}
}
