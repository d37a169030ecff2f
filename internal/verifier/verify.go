// Package verifier is the database side of verification: it loads chains,
// checkpoints, archive manifests and redaction records from PostgreSQL,
// walks them with integrity.ChainVerifier, records runs and checks standbys.
package verifier

import (
	"cmp"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/auditdb/auditdb/integrity"
)

// Options for Verify. The zero value verifies every chain, two readers per
// CPU, and records the run.
type Options struct {
	// Chains limits the run to these chain ids. Defaults to all chains.
	Chains []int16
	// Keys checks checkpoint MACs. Defaults to none (MACs not checked).
	Keys integrity.Keyring
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
	// Anchors, when set, is the checked contents of an anchor sink
	// (integrity.CheckBundles): its findings join the run's, and every
	// chain is compared with the positions its trusted bundles anchor.
	// Defaults to none.
	Anchors *integrity.AnchorReport
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
func Verify(ctx context.Context, pool *pgxpool.Pool, opts Options) (*integrity.Report, error) {
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
	rep := &integrity.Report{Status: "intact", Mode: mode, StartedAt: start, MACsChecked: len(opts.Keys) > 0,
		Chains: []integrity.ChainResult{}, Findings: []integrity.Finding{}}

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
				var anchored []integrity.AnchoredHead
				if opts.Anchors != nil {
					anchored = opts.Anchors.Heads[chains[i].id]
				}
				results[i] = verifyChain(ctx, src, chains[i].id, opts.Keys, anchored, chains[i].verified, &done)
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
	if opts.Anchors != nil {
		summary := *opts.Anchors
		summary.Findings = nil // they are the run's findings
		rep.Anchors = &summary
		rep.Findings = append(rep.Findings, opts.Anchors.Findings...)
	}
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
func strayChains(ctx context.Context, pool *pgxpool.Pool, lo, hi int16) ([]integrity.Finding, error) {
	var out []integrity.Finding
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
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (integrity.Finding, error) {
			var f integrity.Finding
			var n int64
			err := r.Scan(&f.ChainID, &f.ChainSeq, &f.RowID, &n)
			f.Kind = integrity.RowModified
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
func incrementalSeed(ctx context.Context, tx pgx.Tx, chainID int16, verified int64, keys integrity.Keyring) (*integrity.Checkpoint, error) {
	cp := integrity.Checkpoint{ChainID: chainID}
	err := tx.QueryRow(ctx, `SELECT chain_seq, hash, sealed_at, key_id, mac FROM audit.integrity_checkpoints
		WHERE chain_id = $1 AND chain_seq <= $2 ORDER BY chain_seq DESC, id DESC LIMIT 1`, chainID, verified).
		Scan(&cp.Seq, &cp.Hash, &cp.SealedAt, &cp.KeyID, &cp.MAC)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("chain %d: incremental seed: %w", chainID, err)
	}
	if cp.CheckSeal(keys) != integrity.SealValid { // Verify refuses incremental runs without keys
		return nil, nil
	}
	rows, err := tx.Query(ctx, `SELECT hash FROM audit.audit_log WHERE chain_id = $1 AND chain_seq = $2`, chainID, cp.Seq)
	if err != nil {
		return nil, fmt.Errorf("chain %d: incremental seed: %w", chainID, err)
	}
	hashes, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("chain %d: incremental seed: %w", chainID, err)
	}
	if len(hashes) != 1 || hashes[0] != cp.Hash {
		return nil, nil
	}
	return &cp, nil
}

func recordRun(ctx context.Context, pool *pgxpool.Pool, runID int64, rep *integrity.Report, keyID string, key []byte) error {
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
		perChain := map[string]integrity.ChainResult{}
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

type chainOutcome struct {
	integrity.ChainResult
	findings []integrity.Finding
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

func verifyChain(ctx context.Context, pool *pgxpool.Pool, chainID int16, keys integrity.Keyring, anchored []integrity.AnchoredHead, verified int64, done *atomic.Int64) (out chainOutcome) {
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
		var seed *integrity.Checkpoint
		if verified > 0 {
			var err error
			if seed, err = incrementalSeed(ctx, tx, chainID, verified, keys); err != nil {
				return err
			}
		}
		var from int64
		if seed != nil {
			from = seed.Seq
		}
		cps, err := loadCheckpoints(ctx, tx, chainID, from)
		if err != nil {
			return err
		}
		mans, err := LoadArchiveManifests(ctx, tx, `WHERE chain_id = $1`, chainID)
		if err != nil {
			return fmt.Errorf("chain %d: %w", chainID, err)
		}
		redacted, err := loadRedactions(ctx, tx, chainID, from)
		if err != nil {
			return err
		}
		in := integrity.ChainInput{ChainID: chainID, Checkpoints: cps, Manifests: mans, Redactions: redacted, Keys: keys, Anchors: anchored}
		query, args := rowQuery+rowOrder, []any{pgx.QueryResultFormats{pgx.BinaryFormatCode}, chainID}
		if seed != nil {
			// the seed's hash is authenticated (MAC) and was verified by an
			// earlier run: the chain continues from it
			if _, err := hex.Decode(in.StartHash[:], []byte(seed.Hash)); err != nil {
				return fmt.Errorf("chain %d: checkpoint hash: %w", chainID, err)
			}
			in.StartSeq = seed.Seq
			out.FromSeq = seed.Seq
			query, args = rowQuery+` AND chain_seq > $2`+rowOrder, append(args, seed.Seq)
		}
		cv := integrity.NewChainVerifier(in)
		if below := cv.AnchorsBelowStart(); len(below) > 0 {
			if err := checkStoredAnchors(ctx, tx, cv, chainID, below); err != nil {
				return err
			}
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
			r     integrity.Row
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
			cv.Row(&r, raw[22])
			if batch++; batch == 1024 {
				done.Add(batch)
				batch = 0
			}
		}
		done.Add(batch)
		if err := rows.Err(); err != nil {
			return fmt.Errorf("chain %d: read rows: %w", chainID, err)
		}
		cv.Finish(head)
		out.Rows = cv.Rows()
		out.VerifiedSeq = cv.LastSeq()
		if cv.LastSeq() > 0 {
			h := cv.Hash()
			out.VerifiedHash = hex.EncodeToString(h[:])
		}
		out.Checkpoints = cv.CheckpointsChecked()
		out.Anchors, out.AnchorsInArchive = cv.AnchorsChecked()
		out.findings = cv.Findings()
		out.Findings = len(out.findings)
		return nil
	})
	return out
}

// checkStoredAnchors compares the anchored positions an incremental run
// starts after with the rows' stored hashes: one index lookup each. Earlier
// runs verified those rows, so a stored hash that differs from the anchor
// means the chain was rewritten since (and re-sealed, or the seed would not
// have been trusted).
func checkStoredAnchors(ctx context.Context, tx pgx.Tx, cv *integrity.ChainVerifier, chainID int16, below []integrity.AnchoredHead) error {
	seqs := make([]int64, len(below))
	for i, a := range below {
		seqs[i] = a.Seq
	}
	rows, err := tx.Query(ctx, `SELECT chain_seq, hash FROM audit.audit_log WHERE chain_id = $1 AND chain_seq = ANY($2)`, chainID, seqs)
	if err != nil {
		return fmt.Errorf("chain %d: anchored rows: %w", chainID, err)
	}
	stored := map[int64]string{}
	var (
		seq  int64
		hash string
	)
	if _, err := pgx.ForEachRow(rows, []any{&seq, &hash}, func() error { stored[seq] = hash; return nil }); err != nil {
		return fmt.Errorf("chain %d: anchored rows: %w", chainID, err)
	}
	for _, a := range below {
		h, ok := stored[a.Seq]
		cv.CheckStoredAnchor(a, h, ok)
	}
	return nil
}

// loadCheckpoints returns the chain's checkpoints after seq from, in order.
func loadCheckpoints(ctx context.Context, tx pgx.Tx, chainID int16, from int64) ([]integrity.Checkpoint, error) {
	rows, err := tx.Query(ctx, `SELECT chain_seq, hash, sealed_at, key_id, mac FROM audit.integrity_checkpoints
		WHERE chain_id = $1 AND chain_seq > $2 ORDER BY chain_seq, id`, chainID, from)
	if err != nil {
		return nil, fmt.Errorf("chain %d: checkpoints: %w", chainID, err)
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (integrity.Checkpoint, error) {
		c := integrity.Checkpoint{ChainID: chainID}
		err := row.Scan(&c.Seq, &c.Hash, &c.SealedAt, &c.KeyID, &c.MAC)
		return c, err
	})
}

// loadRedactions returns the chain's redaction records by row id, of rows
// after seq from (those the run reads).
func loadRedactions(ctx context.Context, tx pgx.Tx, chainID int16, from int64) (map[int64][]integrity.Redaction, error) {
	rows, err := tx.Query(ctx, `SELECT row_id, chain_seq, created_at, reason, key_id, mac FROM audit.redactions
		WHERE chain_id = $1 AND chain_seq > $2`, chainID, from)
	if err != nil {
		return nil, fmt.Errorf("chain %d: redactions: %w", chainID, err)
	}
	m := map[int64][]integrity.Redaction{}
	var (
		createdAt time.Time
		r         = integrity.Redaction{ChainID: chainID}
	)
	_, err = pgx.ForEachRow(rows, []any{&r.RowID, &r.Seq, &createdAt, &r.Reason, &r.KeyID, &r.MAC}, func() error {
		r.CreatedAtUS = createdAt.UnixMicro()
		m[r.RowID] = append(m[r.RowID], r)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("chain %d: redactions: %w", chainID, err)
	}
	return m, nil
}
