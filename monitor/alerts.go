package monitor

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Alert kinds raised by EvaluateAlerts. Other kinds (the jobs' own) may be
// raised through AlertStore.Raise; the evaluator resolves only these.
const (
	// AlertIntegrityTampered: chains whose newest verification found
	// tampering. The verify job raises it at once, the evaluator keeps it
	// open while it holds and resolves it after.
	AlertIntegrityTampered    = "integrity_tampered"
	AlertVerificationFailed   = "verification_failed"
	AlertSealLag              = "seal_lag"
	AlertDefaultPartitionRows = "default_partition_rows"
	AlertPartitionsAhead      = "partitions_missing_ahead"
	AlertSlowQueries          = "slow_queries"
	AlertConnectionSaturation = "connection_saturation"
)

// EvaluatedAlertKinds are the kinds EvaluateAlerts computes: an open alert
// of one of these kinds whose condition is gone is resolved by Sync.
var EvaluatedAlertKinds = []string{AlertIntegrityTampered, AlertVerificationFailed, AlertSealLag, AlertDefaultPartitionRows,
	AlertPartitionsAhead, AlertSlowQueries, AlertConnectionSaturation}

// Alert severities.
const (
	AlertInfo     = "info"
	AlertWarning  = "warning"
	AlertCritical = "critical"
)

// Alert statuses.
const (
	AlertOpen         = "open"
	AlertAcknowledged = "acknowledged"
	AlertResolved     = "resolved"
)

// Webhook events: an alert opened, or was resolved.
const (
	AlertEventOpened   = "opened"
	AlertEventResolved = "resolved"
)

// Defaults of AlertConfig, applied by WithDefaults to fields left zero.
const (
	AlertSealLagDefault         time.Duration = 15 * time.Minute
	AlertSealLagRowsDefault     int64         = 100000
	AlertPartitionsAheadDefault               = 2
	// AlertSlowQueryDefault is SlowQueryThresholdDefault, the one default.
	AlertSlowQueryDefault               = SlowQueryThresholdDefault
	AlertSlowQueryMinCallsDefault int64 = 5
	AlertConnectionsRatioDefault        = 0.8
)

// The environment variables AlertConfigFromEnv reads.
const (
	EnvAlertSealLag          = "AUDIT_ALERT_SEAL_LAG"          // duration, e.g. 15m
	EnvAlertSealLagRows      = "AUDIT_ALERT_SEAL_LAG_ROWS"     // rows
	EnvAlertPartitionsAhead  = "AUDIT_ALERT_PARTITIONS_AHEAD"  // partitions
	EnvAlertSlowQuery        = EnvSlowQueryThreshold           // milliseconds; ParseSlowQueryThreshold
	EnvAlertConnectionsRatio = "AUDIT_ALERT_CONNECTIONS_RATIO" // 0..1
	EnvAlertWebhookURLs      = "AUDIT_ALERT_WEBHOOK_URLS"      // comma-separated
)

// AlertConfig holds the alert thresholds and where alerts are delivered.
// Fields left zero take their defaults.
type AlertConfig struct {
	// SealLag: a chain whose oldest row not covered by an HMAC checkpoint
	// is older than this raises seal_lag. Defaults to 15m
	// (AUDIT_ALERT_SEAL_LAG).
	SealLag time.Duration
	// SealLagRows: a chain with more rows than this past its newest
	// checkpoint raises seal_lag. Defaults to 100000
	// (AUDIT_ALERT_SEAL_LAG_ROWS).
	SealLagRows int64
	// PartitionsAhead: fewer monthly partitions than this after the
	// current month raise partitions_missing_ahead. Defaults to 2
	// (AUDIT_ALERT_PARTITIONS_AHEAD).
	PartitionsAhead int
	// SlowQuery: statements of pg_stat_statements whose mean execution
	// time is above it raise slow_queries. Defaults to 1s
	// (AUDIT_SLOW_QUERY_THRESHOLD, milliseconds).
	SlowQuery time.Duration
	// SlowQueryMinCalls: statements called fewer times are ignored.
	// Defaults to 5.
	SlowQueryMinCalls int64
	// ConnectionsRatio: client connections above this share of the
	// server's max_connections (less the superuser reserve) raise
	// connection_saturation. Defaults to 0.8 (AUDIT_ALERT_CONNECTIONS_RATIO).
	ConnectionsRatio float64
	// WebhookURLs receive every alert opened and resolved as a JSON POST.
	// Defaults to none (AUDIT_ALERT_WEBHOOK_URLS, comma-separated).
	WebhookURLs []string
}

// WithDefaults returns c with every field left zero set to its default.
func (c AlertConfig) WithDefaults() AlertConfig {
	if c.SealLag == 0 {
		c.SealLag = AlertSealLagDefault
	}
	if c.SealLagRows == 0 {
		c.SealLagRows = AlertSealLagRowsDefault
	}
	if c.PartitionsAhead == 0 {
		c.PartitionsAhead = AlertPartitionsAheadDefault
	}
	if c.SlowQuery == 0 {
		c.SlowQuery = AlertSlowQueryDefault
	}
	if c.SlowQueryMinCalls == 0 {
		c.SlowQueryMinCalls = AlertSlowQueryMinCallsDefault
	}
	if c.ConnectionsRatio == 0 {
		c.ConnectionsRatio = AlertConnectionsRatioDefault
	}
	return c
}

// Validate reports the first field out of range.
func (c AlertConfig) Validate() error {
	switch {
	case c.SealLag < 0:
		return fmt.Errorf("alerts SealLag: must not be negative, got %s", c.SealLag)
	case c.SealLagRows < 0:
		return fmt.Errorf("alerts SealLagRows: must not be negative, got %d", c.SealLagRows)
	case c.PartitionsAhead < 0 || c.PartitionsAhead > 120:
		return fmt.Errorf("alerts PartitionsAhead: must be between 0 and 120, got %d", c.PartitionsAhead)
	case c.SlowQuery < 0 || c.SlowQueryMinCalls < 0:
		return errors.New("alerts SlowQuery, SlowQueryMinCalls: must not be negative")
	case c.ConnectionsRatio <= 0 || c.ConnectionsRatio > 1:
		return fmt.Errorf("alerts ConnectionsRatio: must be in (0, 1], got %g", c.ConnectionsRatio)
	}
	for i, u := range c.WebhookURLs {
		p, err := url.Parse(u)
		if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			// the URL itself may carry a token: name its position only
			return fmt.Errorf("alerts WebhookURLs[%d]: must be an absolute http or https URL", i)
		}
	}
	return nil
}

// AlertConfigFromEnv reads AlertConfig from the AUDIT_ALERT_* variables
// and AUDIT_SLOW_QUERY_THRESHOLD, with defaults for those unset.
func AlertConfigFromEnv() (AlertConfig, error) {
	return alertConfigFromEnv(os.Getenv)
}

func alertConfigFromEnv(getenv func(string) string) (AlertConfig, error) {
	var c AlertConfig
	var err error
	if v := getenv(EnvAlertSealLag); v != "" {
		if c.SealLag, err = time.ParseDuration(v); err != nil {
			return c, fmt.Errorf("%s: not a duration (like 15m): %q", EnvAlertSealLag, v)
		}
	}
	if v := getenv(EnvAlertSealLagRows); v != "" {
		if c.SealLagRows, err = strconv.ParseInt(v, 10, 64); err != nil {
			return c, fmt.Errorf("%s: not an integer: %q", EnvAlertSealLagRows, v)
		}
	}
	if v := getenv(EnvAlertPartitionsAhead); v != "" {
		if c.PartitionsAhead, err = strconv.Atoi(v); err != nil {
			return c, fmt.Errorf("%s: not an integer: %q", EnvAlertPartitionsAhead, v)
		}
	}
	if v := getenv(EnvAlertSlowQuery); v != "" {
		if c.SlowQuery, err = ParseSlowQueryThreshold(v); err != nil {
			return c, fmt.Errorf("%s: %w", EnvAlertSlowQuery, err)
		}
	}
	if v := getenv(EnvAlertConnectionsRatio); v != "" {
		if c.ConnectionsRatio, err = strconv.ParseFloat(v, 64); err != nil {
			return c, fmt.Errorf("%s: not a number: %q", EnvAlertConnectionsRatio, v)
		}
	}
	for _, u := range strings.Split(getenv(EnvAlertWebhookURLs), ",") {
		if u = strings.TrimSpace(u); u != "" {
			c.WebhookURLs = append(c.WebhookURLs, u)
		}
	}
	c = c.WithDefaults()
	return c, c.Validate()
}

// Condition is one problem as the evaluator (or a job) sees it now.
type Condition struct {
	Kind     string `json:"kind"`
	Severity string `json:"severity"`
	// Message says what is wrong and what to do, in counts and names.
	Message string `json:"message"`
	// Labels identify the instance of the problem (a run id): they are
	// part of its fingerprint, so a new run's failure is a new alert.
	Labels map[string]string `json:"labels,omitempty"`
}

// AlertFingerprint is the deduplication key of a kind and its labels.
func AlertFingerprint(kind string, labels map[string]string) string {
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	h := sha256.New()
	h.Write([]byte(kind))
	for _, k := range keys {
		fmt.Fprintf(h, "\n%s=%s", k, labels[k])
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// EvaluateAlerts computes the conditions that hold now: the newest
// verification found tampering or failed; sealing lags; the default
// partition holds rows; too few partitions ahead; slow statements (when
// pg_stat_statements can be read); client connections near the server's
// limit. It changes nothing; AlertStore.Sync records the result.
func EvaluateAlerts(ctx context.Context, pool *pgxpool.Pool, cfg AlertConfig) ([]Condition, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	var out []Condition
	for _, check := range []func(context.Context, *pgxpool.Pool, AlertConfig) ([]Condition, error){
		evalVerification, evalSealLag, evalPartitions, evalSlowQueries, evalConnections,
	} {
		c, err := check(ctx, pool, cfg)
		if err != nil {
			return nil, fmt.Errorf("alerts: %w", err)
		}
		out = append(out, c...)
	}
	return out, nil
}

func evalVerification(ctx context.Context, pool *pgxpool.Pool, _ AlertConfig) ([]Condition, error) {
	var out []Condition
	// Tampering per chain comes from the newest run that covered the chain,
	// so an incremental run over other chains does not hide it (Health
	// judges by the same probe).
	s, err := tamperedChains(ctx, pool)
	if err != nil {
		return nil, fmt.Errorf("verification: %w", err)
	}
	switch {
	case s.Chains > 0:
		// no run id in the labels: the alert stays one alert while the
		// tampering stays (labels are part of its fingerprint)
		out = append(out, Condition{Kind: AlertIntegrityTampered, Severity: AlertCritical,
			Message: fmt.Sprintf("verification run %d found tampering on %d chain(s): run auditworker verify and investigate", s.RunID, s.Chains)})
	case s.Tampered():
		out = append(out, Condition{Kind: AlertIntegrityTampered, Severity: AlertCritical,
			Message: fmt.Sprintf("verification run %d found %d findings: run auditworker verify and investigate", s.Latest.ID, s.Latest.Findings)})
	}
	if s.Latest != nil && s.Latest.Status == "failed" {
		out = append(out, Condition{Kind: AlertVerificationFailed, Severity: AlertCritical,
			Message: fmt.Sprintf("verification run %d failed before finishing: see the worker's log", s.Latest.ID)})
	}
	return out, nil
}

func evalSealLag(ctx context.Context, pool *pgxpool.Pool, cfg AlertConfig) ([]Condition, error) {
	s, err := sealLag(ctx, pool, cfg.SealLag, cfg.SealLagRows)
	if err != nil {
		return nil, fmt.Errorf("seal lag: %w", err)
	}
	if s.Past == 0 {
		return nil, nil
	}
	return []Condition{{Kind: AlertSealLag, Severity: AlertWarning,
		Message: fmt.Sprintf("%d chain(s) past the seal thresholds (%d rows or %s): up to %d unsealed rows, oldest %s: is the seal job running with a key?",
			s.Past, cfg.SealLagRows, cfg.SealLag, s.PastMaxRows, s.PastOldest.Round(time.Second))}}, nil
}

const alertDefaultRowsCap = 10000

func evalPartitions(ctx context.Context, pool *pgxpool.Pool, cfg AlertConfig) ([]Condition, error) {
	var out []Condition
	p, err := partitionsAhead(ctx, pool)
	if err != nil {
		return nil, fmt.Errorf("partitions: %w", err)
	}
	if p.DefaultHasRows {
		// Counting stops past alertDefaultRowsCap: the evaluator runs every
		// minute and the number only needs to say how bad it is.
		inDefault, err := defaultPartitionRows(ctx, pool, alertDefaultRowsCap+1)
		if err != nil {
			return nil, fmt.Errorf("partitions: %w", err)
		}
		n := strconv.FormatInt(inDefault, 10)
		if inDefault > alertDefaultRowsCap {
			n = fmt.Sprintf("more than %d", alertDefaultRowsCap)
		}
		out = append(out, Condition{Kind: AlertDefaultPartitionRows, Severity: AlertWarning,
			Message: fmt.Sprintf("the default partition holds %s row(s) whose month has no partition: run auditworker partitions rescue", n)})
	}
	if p.Ahead < cfg.PartitionsAhead {
		out = append(out, Condition{Kind: AlertPartitionsAhead, Severity: AlertWarning,
			Message: fmt.Sprintf("%d monthly partition(s) after the current month, fewer than %d: run auditworker partitions ensure", p.Ahead, cfg.PartitionsAhead)})
	}
	return out, nil
}

func evalSlowQueries(ctx context.Context, pool *pgxpool.Pool, cfg AlertConfig) ([]Condition, error) {
	stmts, _, err := SlowStatements(ctx, pool, cfg.SlowQuery, cfg.SlowQueryMinCalls, 100)
	if err != nil || len(stmts) == 0 {
		return nil, err
	}
	return []Condition{{Kind: AlertSlowQueries, Severity: AlertWarning,
		Message: fmt.Sprintf("%d statement(s) average over %s; slowest queryid %d at %.0f ms over %d calls: see auditworker optimize report",
			len(stmts), cfg.SlowQuery, stmts[0].QueryID, stmts[0].MeanMillis, stmts[0].Calls)}}, nil
}

func evalConnections(ctx context.Context, pool *pgxpool.Pool, cfg AlertConfig) ([]Condition, error) {
	var used, limit int64
	err := pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'),
		current_setting('max_connections')::bigint - current_setting('superuser_reserved_connections')::bigint`).Scan(&used, &limit)
	if err != nil {
		return nil, fmt.Errorf("connections: %w", err)
	}
	if limit <= 0 || float64(used) < cfg.ConnectionsRatio*float64(limit) {
		return nil, nil
	}
	return []Condition{{Kind: AlertConnectionSaturation, Severity: AlertWarning,
		Message: fmt.Sprintf("%d of %d connections in use (threshold %.0f%%): lower pool sizes or raise max_connections", used, limit, 100*cfg.ConnectionsRatio)}}, nil
}

// Alert is one row of audit.alerts.
type Alert struct {
	ID             int64             `json:"id"`
	Kind           string            `json:"kind"`
	Severity       string            `json:"severity"`
	Fingerprint    string            `json:"fingerprint"`
	Message        string            `json:"message"`
	Labels         map[string]string `json:"labels"`
	Status         string            `json:"status"`
	FirstSeen      time.Time         `json:"first_seen"`
	LastSeen       time.Time         `json:"last_seen"`
	Occurrences    int64             `json:"occurrences"`
	AcknowledgedBy *string           `json:"acknowledged_by"`
	AcknowledgedAt *time.Time        `json:"acknowledged_at"`
	ResolvedAt     *time.Time        `json:"resolved_at"`
}

// ErrAlertNotFound is returned for an alert id that does not exist.
var ErrAlertNotFound = errors.New("no such alert")

// ErrAlertResolved is returned when acknowledging a resolved alert.
var ErrAlertResolved = errors.New("alert is already resolved")

// AlertNotifier is called inside the transaction that opens or resolves an
// alert (event AlertEventOpened or AlertEventResolved), so that what it
// enqueues (webhook jobs) commits with the change or not at all.
type AlertNotifier func(ctx context.Context, tx pgx.Tx, a Alert, event string) error

// AlertStore keeps alerts in audit.alerts. Its Raise method is the
// workers.Alerter the jobs raise through. Safe for concurrent use.
type AlertStore struct {
	pool   *pgxpool.Pool
	logger *slog.Logger
	notify AlertNotifier
}

// AlertStoreOptions for NewAlertStore.
type AlertStoreOptions struct {
	// Logger receives a line for every alert opened (error level when
	// critical, else warning) and resolved. Defaults to slog.Default().
	Logger *slog.Logger
	// Notify, if set, is called for every alert opened and resolved.
	Notify AlertNotifier
}

// NewAlertStore returns a store on pool.
func NewAlertStore(pool *pgxpool.Pool, opts AlertStoreOptions) *AlertStore {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &AlertStore{pool: pool, logger: opts.Logger, notify: opts.Notify}
}

const alertColumns = `id, kind, severity, fingerprint, message, labels, status, first_seen, last_seen,
	occurrences, acknowledged_by, acknowledged_at, resolved_at`

func scanAlert(r pgx.Row, extra ...any) (Alert, error) {
	var a Alert
	err := r.Scan(append([]any{&a.ID, &a.Kind, &a.Severity, &a.Fingerprint, &a.Message, &a.Labels, &a.Status,
		&a.FirstSeen, &a.LastSeen, &a.Occurrences, &a.AcknowledgedBy, &a.AcknowledgedAt, &a.ResolvedAt}, extra...)...)
	return a, err
}

var alertKindRE = regexp.MustCompile(`^[a-z][a-z0-9_]{0,62}$`)

// Raise records an alert: a new one when no unresolved alert has the same
// kind and labels, else one more occurrence of that one. It satisfies the
// workers' Alerter interface.
func (s *AlertStore) Raise(ctx context.Context, kind, severity, message string, labels map[string]string) error {
	_, _, err := s.Open(ctx, Condition{Kind: kind, Severity: severity, Message: message, Labels: labels})
	return err
}

// Open records condition c as Raise does and returns the alert, and
// whether it was newly opened (false: a repeat of an unresolved one).
func (s *AlertStore) Open(ctx context.Context, c Condition) (Alert, bool, error) {
	switch {
	case !alertKindRE.MatchString(c.Kind):
		return Alert{}, false, fmt.Errorf("alert kind %q: must be lower_snake_case, at most 63 characters", c.Kind)
	case c.Severity != AlertInfo && c.Severity != AlertWarning && c.Severity != AlertCritical:
		return Alert{}, false, fmt.Errorf("alert severity %q: must be info, warning or critical", c.Severity)
	}
	labels := c.Labels
	if labels == nil {
		labels = map[string]string{}
	}
	var a Alert
	var opened bool
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var err error
		// xmax is 0 on a row this statement inserted, set on one it updated.
		a, err = scanAlert(tx.QueryRow(ctx, `
INSERT INTO audit.alerts (kind, severity, fingerprint, message, labels)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (fingerprint) WHERE status <> 'resolved'
DO UPDATE SET last_seen = now(), occurrences = audit.alerts.occurrences + 1,
              severity = EXCLUDED.severity, message = EXCLUDED.message
RETURNING `+alertColumns+`, xmax = 0`, c.Kind, c.Severity, AlertFingerprint(c.Kind, labels), c.Message, labels), &opened)
		if err != nil {
			return err
		}
		if opened && s.notify != nil {
			return s.notify(ctx, tx, a, AlertEventOpened)
		}
		return nil
	})
	if err != nil {
		return Alert{}, false, fmt.Errorf("raise alert %s: %w", c.Kind, err)
	}
	if opened {
		level := slog.LevelWarn
		if a.Severity == AlertCritical {
			level = slog.LevelError
		}
		s.logger.Log(ctx, level, "alerts: opened "+a.Message, "alert_id", a.ID, "kind", a.Kind, "severity", a.Severity)
	}
	return a, opened, nil
}

// Get returns one alert, or ErrAlertNotFound.
func (s *AlertStore) Get(ctx context.Context, id int64) (Alert, error) {
	a, err := scanAlert(s.pool.QueryRow(ctx, `SELECT `+alertColumns+` FROM audit.alerts WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return Alert{}, fmt.Errorf("alert %d: %w", id, ErrAlertNotFound)
	}
	if err != nil {
		return Alert{}, fmt.Errorf("alert %d: %w", id, err)
	}
	return a, nil
}

// List returns alerts with status (AlertOpen, AlertAcknowledged,
// AlertResolved), "active" (open or acknowledged) or "all", newest first,
// at most limit (0: 1000).
func (s *AlertStore) List(ctx context.Context, status string, limit int) ([]Alert, error) {
	var statuses []string
	switch status {
	case AlertOpen, AlertAcknowledged, AlertResolved:
		statuses = []string{status}
	case "active":
		statuses = []string{AlertOpen, AlertAcknowledged}
	case "all":
		statuses = []string{AlertOpen, AlertAcknowledged, AlertResolved}
	default:
		return nil, fmt.Errorf("alert status %q: must be open, acknowledged, resolved, active or all", status)
	}
	if limit <= 0 {
		limit = 1000
	}
	rows, err := s.pool.Query(ctx, `SELECT `+alertColumns+` FROM audit.alerts WHERE status = ANY ($1)
		ORDER BY last_seen DESC, id DESC LIMIT $2`, statuses, limit)
	if err != nil {
		return nil, fmt.Errorf("list alerts: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Alert, error) { return scanAlert(r) })
	if err != nil {
		return nil, fmt.Errorf("list alerts: %w", err)
	}
	return out, nil
}

// Acknowledge marks an open alert as seen by whom: it stays unresolved, so
// repeats still count on it. Acknowledging twice keeps the first.
func (s *AlertStore) Acknowledge(ctx context.Context, id int64, by string) (Alert, error) {
	if strings.TrimSpace(by) == "" {
		return Alert{}, errors.New("acknowledge: by must name who acknowledges")
	}
	a, err := scanAlert(s.pool.QueryRow(ctx, `UPDATE audit.alerts
		SET status = 'acknowledged', acknowledged_by = $2, acknowledged_at = now()
		WHERE id = $1 AND status = 'open' RETURNING `+alertColumns, id, by))
	if errors.Is(err, pgx.ErrNoRows) {
		if a, err = s.Get(ctx, id); err != nil {
			return Alert{}, err
		}
		if a.Status == AlertResolved {
			return a, fmt.Errorf("alert %d: %w", id, ErrAlertResolved)
		}
		return a, nil
	}
	if err != nil {
		return Alert{}, fmt.Errorf("acknowledge alert %d: %w", id, err)
	}
	return a, nil
}

// Resolve closes an alert; the same problem raised again opens a new one.
// Resolving a resolved alert changes nothing.
func (s *AlertStore) Resolve(ctx context.Context, id int64) (Alert, error) {
	var a Alert
	var changed bool
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var err error
		a, err = scanAlert(tx.QueryRow(ctx, `UPDATE audit.alerts SET status = 'resolved', resolved_at = now()
			WHERE id = $1 AND status <> 'resolved' RETURNING `+alertColumns, id))
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		changed = true
		if s.notify != nil {
			return s.notify(ctx, tx, a, AlertEventResolved)
		}
		return nil
	})
	if err != nil {
		return Alert{}, fmt.Errorf("resolve alert %d: %w", id, err)
	}
	if !changed {
		return s.Get(ctx, id)
	}
	s.logger.InfoContext(ctx, "alerts: resolved "+a.Message, "alert_id", a.ID, "kind", a.Kind)
	return a, nil
}

// AlertSync is what Sync did.
type AlertSync struct {
	Opened   []Alert `json:"opened"`
	Repeated []Alert `json:"repeated"`
	Resolved []Alert `json:"resolved"`
}

// Sync records the conditions that hold now and resolves the unresolved
// alerts of the given kinds (EvaluatedAlertKinds for the evaluator) whose
// condition no longer holds.
func (s *AlertStore) Sync(ctx context.Context, conds []Condition, kinds []string) (*AlertSync, error) {
	res := &AlertSync{Opened: []Alert{}, Repeated: []Alert{}, Resolved: []Alert{}}
	holding := make([]string, 0, len(conds))
	for _, c := range conds {
		a, opened, err := s.Open(ctx, c)
		if err != nil {
			return nil, err
		}
		if opened {
			res.Opened = append(res.Opened, a)
		} else {
			res.Repeated = append(res.Repeated, a)
		}
		holding = append(holding, a.Fingerprint)
	}
	rows, err := s.pool.Query(ctx, `SELECT id FROM audit.alerts
		WHERE status <> 'resolved' AND kind = ANY ($1) AND NOT fingerprint = ANY ($2) ORDER BY id`, kinds, holding)
	if err != nil {
		return nil, fmt.Errorf("alerts to resolve: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, fmt.Errorf("alerts to resolve: %w", err)
	}
	for _, id := range ids {
		a, err := s.Resolve(ctx, id)
		if err != nil {
			return nil, err
		}
		res.Resolved = append(res.Resolved, a)
	}
	return res, nil
}
