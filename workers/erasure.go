package workers

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"

	"github.com/auditdb/auditdb/integrity"
	"github.com/auditdb/auditdb/internal/subject"
)

// ErasureArgs is the periodic sweep of open GDPR erasure requests
// (audit.erasure_requests, written by client.RequestErasure or the CLI).
// A request interrupted by a crash is still open, so the next sweep resumes
// it where its committed batches ended.
type ErasureArgs struct{}

// Kind implements river.JobArgs.
func (ErasureArgs) Kind() string { return "auditdb_erasure" }

// InsertOpts puts the job on the suite's queue; a failed sweep is retried,
// and resumes where its batches ended.
func (ErasureArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: Queue, MaxAttempts: 5}
}

// ErasureWorker runs ErasureArgs.
type ErasureWorker struct {
	river.WorkerDefaults[ErasureArgs]
	Deps *Deps
}

// Work implements river.Worker.
func (w *ErasureWorker) Work(ctx context.Context, _ *river.Job[ErasureArgs]) error {
	return w.Deps.ProcessErasures(ctx)
}

// erasureJobTimeout bounds one sweep. River's default of one minute is
// about 200,000 rows at the measured 3,400 rows/s: a larger subject would
// be cut off, logged as a failure and resumed by the retry, every minute.
const erasureJobTimeout = time.Hour

// Timeout implements river.Worker.
func (w *ErasureWorker) Timeout(*river.Job[ErasureArgs]) time.Duration { return erasureJobTimeout }

// ErrLegalHold is wrapped when a legal hold blocks an erasure (the client's
// request wraps the same error).
var ErrLegalHold = subject.ErrLegalHold

// ErasureResult is the outcome of one erasure request.
type ErasureResult struct {
	RequestID int64  `json:"request_id"`
	Status    string `json:"status"`
	Rows      int64  `json:"rows"`
	// Token replaces the subject's ids in every erased row.
	Token string `json:"token,omitempty"`
	// Organizations whose cached reads must be dropped.
	Organizations []string `json:"organizations,omitempty"`
}

// erasureBatch bounds one transaction: row locks and WAL stay small, and a
// crash loses at most one uncommitted batch, which the next run redoes.
const erasureBatch = 500

// erasureLockSpace keys the advisory lock that keeps two workers off one request.
const erasureLockSpace = 0x65726173 // 'eras'

// ProcessErasures runs every open erasure request in order. A request
// refused by a legal hold is marked refused and the sweep goes on.
func (d *Deps) ProcessErasures(ctx context.Context) error {
	rows, err := d.Pool.Query(ctx, `SELECT id FROM audit.erasure_requests WHERE status IN ('pending', 'running') ORDER BY id`)
	if err != nil {
		return fmt.Errorf("erasure: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return fmt.Errorf("erasure: %w", err)
	}
	for _, id := range ids {
		res, err := d.Erase(ctx, id, nil)
		if errors.Is(err, ErrLegalHold) {
			d.logger().WarnContext(ctx, "erasure: refused by a legal hold", "request_id", id)
			continue
		}
		if err != nil {
			return err
		}
		d.logger().InfoContext(ctx, "erasure: done", "request_id", id, "rows", res.Rows)
	}
	return nil
}

// Erase carries out erasure request id: for every event in which the
// subject is the principal (or one of their write-time pseudonyms) or the
// target resource, it replaces those ids with the request's token, clears
// the other PII columns the subject's data may sit in, deletes pii_salt and
// keeps pii_commitment, and writes a redaction record sealed with the active
// key, batch by batch, each batch in one transaction with its records. The
// rows still verify (INTEGRITY.md, Retention and redaction). progress, if
// not nil, gets rows done and rows in all. Safe to call again after a crash.
func (d *Deps) Erase(ctx context.Context, id int64, progress func(done, total int64)) (*ErasureResult, error) {
	keyID, key, err := d.sealKeys().ActiveKey()
	if err != nil {
		return nil, err
	}
	conn, err := d.Pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("erasure %d: %w", id, err)
	}
	defer conn.Release()
	var locked bool
	if id > math.MaxInt32 {
		// the lock key below holds 32 bits of the id
		return nil, fmt.Errorf("erasure %d: request ids above %d are not supported", id, math.MaxInt32)
	}
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1, $2)`, erasureLockSpace, int32(id)).Scan(&locked); err != nil {
		return nil, fmt.Errorf("erasure %d: %w", id, err)
	}
	if !locked {
		return nil, fmt.Errorf("erasure %d: another worker is running it", id)
	}
	defer func() {
		_, _ = conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1, $2)`, erasureLockSpace, int32(id))
	}()

	res := &ErasureResult{RequestID: id}
	var principal, rtype, rid *string
	var done int64
	err = conn.QueryRow(ctx, `SELECT principal_id, resource_type, resource_id, status, coalesce(token, ''), rows_done
		FROM audit.erasure_requests WHERE id = $1`, id).Scan(&principal, &rtype, &rid, &res.Status, &res.Token, &done)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("erasure %d: no such request", id)
	}
	if err != nil {
		return nil, fmt.Errorf("erasure %d: %w", id, err)
	}
	if principal == nil && rid == nil { // done or refused earlier
		res.Rows = done
		return res, nil
	}
	sub := subject.Subject{PrincipalID: deref(principal), ResourceType: deref(rtype), ResourceID: deref(rid)}
	if err := subject.CheckGDPR(ctx, conn); err != nil {
		return nil, fmt.Errorf("erasure %d: %w", id, err)
	}
	// the principal's ids are their own and the pseudonyms written for them;
	// legal holds are checked by every batch, under a lock
	args, err := subject.Args(ctx, conn, sub)
	if err != nil {
		return nil, fmt.Errorf("erasure %d: %w", id, err)
	}
	if res.Token == "" {
		res.Token = sub.Token(key)
	}
	var total int64
	err = conn.QueryRow(ctx, `WITH n AS (SELECT count(*) AS c FROM audit.audit_log l WHERE `+subject.Where+`)
		UPDATE audit.erasure_requests SET status = 'running', token = $5, rows_total = rows_done + n.c FROM n WHERE id = $4
		RETURNING rows_total`, append(args, id, res.Token)...).Scan(&total)
	if err != nil {
		return nil, fmt.Errorf("erasure %d: %w", id, err)
	}
	reason := "gdpr art. 17 erasure, request " + strconv.FormatInt(id, 10)
	partitions := map[string]bool{}
	for {
		n, err := eraseBatch(ctx, conn, id, args, sub, res.Token, reason, keyID, key, partitions)
		if errors.Is(err, ErrLegalHold) {
			return nil, err
		}
		if err != nil {
			return nil, fmt.Errorf("erasure %d: %w", id, err)
		}
		done += n
		if progress != nil {
			progress(done, total)
		}
		if n < erasureBatch {
			break
		}
	}
	// Cached reads go before the request is done: when purging fails the
	// request stays open and the next run purges again, with every
	// organization the earlier runs touched.
	if err := conn.QueryRow(ctx, `SELECT organizations FROM audit.erasure_requests WHERE id = $1`, id).Scan(&res.Organizations); err != nil {
		return nil, fmt.Errorf("erasure %d: %w", id, err)
	}
	sort.Strings(res.Organizations)
	if d.AfterErasure != nil {
		if err := d.AfterErasure(ctx, res.Organizations); err != nil {
			return nil, fmt.Errorf("erasure %d: purge cached reads: %w", id, err)
		}
	}
	_, err = conn.Exec(ctx, `WITH p AS (DELETE FROM audit.pseudonyms WHERE principal_id = $2)
		UPDATE audit.erasure_requests SET status = 'done', principal_id = NULL, resource_type = NULL, resource_id = NULL,
			finished_at = now() WHERE id = $1`, id, sub.PrincipalID)
	if err != nil {
		return nil, fmt.Errorf("erasure %d: %w", id, err)
	}
	res.Status, res.Rows = "done", done
	if _, err := conn.Exec(ctx, `SELECT audit.chain_holders_scrub()`); err != nil {
		return nil, fmt.Errorf("erasure %d: scrub chain secrets: %w", id, err)
	}
	// The old row versions, and their index entries, hold the values until
	// vacuum removes them. VACUUM needs the table's owner; without that the
	// next autovacuum does it.
	for p := range partitions {
		if _, err := conn.Exec(ctx, `VACUUM (INDEX_CLEANUP ON) `+p); err != nil {
			d.logger().WarnContext(ctx, "erasure: vacuum failed; autovacuum will remove the old row versions", "partition", p, "error", err)
		}
	}
	return res, nil
}

// eraseBatch erases up to erasureBatch rows of the subject (args are
// subject.Where's) in one transaction, with their redaction records.
func eraseBatch(ctx context.Context, conn *pgxpool.Conn, id int64, args []any, sub subject.Subject, token, reason, keyID string, key []byte, partitions map[string]bool) (int64, error) {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return 0, err
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	// A hold placed while the erasure runs stops it before the next batch:
	// holds are read under a share lock, so one being placed now waits or
	// is seen.
	if _, err := tx.Exec(ctx, `LOCK TABLE audit.legal_holds IN SHARE MODE`); err != nil {
		return 0, err
	}
	if holds, err := subject.Holds(ctx, tx, args); err != nil {
		return 0, err
	} else if len(holds) > 0 {
		_ = tx.Rollback(ctx)
		return 0, refuse(ctx, conn, id, strings.Join(holds, ", "))
	}
	var (
		rowIDs  []int64
		times   []time.Time
		orgs    []string
		created time.Time
	)
	if err := tx.QueryRow(ctx, `SELECT now()`).Scan(&created); err != nil {
		return 0, err
	}
	rows, err := tx.Query(ctx, `SELECT id, "timestamp", coalesce(organization_id, ''), tableoid::regclass::text
		FROM audit.audit_log l WHERE `+subject.Where+` ORDER BY id LIMIT $4`, append(args, erasureBatch)...)
	if err != nil {
		return 0, err
	}
	var (
		rowID     int64
		ts        time.Time
		org, part string
	)
	_, err = pgx.ForEachRow(rows, []any{&rowID, &ts, &org, &part}, func() error {
		rowIDs, times = append(rowIDs, rowID), append(times, ts)
		if org != "" && !slices.Contains(orgs, org) {
			orgs = append(orgs, org)
		}
		partitions[part] = true
		return nil
	})
	if err != nil || len(rowIDs) == 0 {
		return 0, err
	}
	_, err = tx.Exec(ctx, `SET LOCAL auditdb.maintenance = 'erasure'`)
	if err != nil {
		return 0, err
	}
	// Ids that are the subject's become the token. The source address is the
	// principal's; outcome text and details may mention anyone involved, so
	// they go in every row. What is left is sealed into the row's redaction
	// record (audit.remaining_pii), since the commitment no longer binds it.
	rows, err = tx.Query(ctx, `UPDATE audit.audit_log SET
			source_ip = CASE WHEN principal_id = ANY($3) THEN NULL ELSE source_ip END,
			principal_id = CASE WHEN principal_id = ANY($3) THEN $6 ELSE principal_id END,
			target_resource_id = CASE WHEN target_resource_type = $4 AND target_resource_id = $5 THEN $6 ELSE target_resource_id END,
			outcome_description = NULL, details = NULL, pii_salt = NULL
		WHERE (id, "timestamp") IN (SELECT * FROM unnest($1::bigint[], $2::timestamptz[]))
		RETURNING id, chain_id, chain_seq, audit.remaining_pii(principal_id, target_resource_id, source_ip, outcome_description, details)`,
		rowIDs, times, args[0], sub.ResourceType, sub.ResourceID, token)
	if err != nil {
		return 0, err
	}
	var (
		ids    []int64
		chains []int16
		seqs   []int64
		macs   []string
		chain  int16
		seq    int64
		after  string
	)
	_, err = pgx.ForEachRow(rows, []any{&rowID, &chain, &seq, &after}, func() error {
		ids, chains, seqs = append(ids, rowID), append(chains, chain), append(seqs, seq)
		macs = append(macs, integrity.RedactionMAC(key, rowID, chain, seq, created.UnixMicro(), after, reason))
		return nil
	})
	if err != nil {
		return 0, err
	}
	if len(ids) != len(rowIDs) {
		return 0, fmt.Errorf("updated %d rows of %d", len(ids), len(rowIDs))
	}
	_, err = tx.Exec(ctx, `INSERT INTO audit.redactions (row_id, chain_id, chain_seq, reason, created_at, key_id, mac)
		SELECT r, c, s, $4, $5, $6, m FROM unnest($1::bigint[], $2::smallint[], $3::bigint[], $7::text[]) AS u(r, c, s, m)`,
		ids, chains, seqs, reason, created, keyID, macs)
	if err != nil {
		return 0, err
	}
	if _, err := tx.Exec(ctx, `UPDATE audit.erasure_requests SET rows_done = rows_done + $2,
		organizations = ARRAY(SELECT DISTINCT unnest(organizations || $3::text[]) ORDER BY 1) WHERE id = $1`, id, len(rowIDs), orgs); err != nil {
		return 0, err
	}
	return int64(len(rowIDs)), tx.Commit(ctx)
}

// refuse records request id as refused by holds (dropping the subject's
// values from it) and returns the ErrLegalHold error.
func refuse(ctx context.Context, conn *pgxpool.Conn, id int64, holds string) error {
	msg := "legal hold " + holds
	if _, err := conn.Exec(ctx, `UPDATE audit.erasure_requests SET status = 'refused', principal_id = NULL, resource_type = NULL,
		resource_id = NULL, error = $2, finished_at = now() WHERE id = $1`, id, msg); err != nil {
		return fmt.Errorf("erasure %d: %w", id, err)
	}
	return fmt.Errorf("%w (request %d: %s)", ErrLegalHold, id, msg)
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
