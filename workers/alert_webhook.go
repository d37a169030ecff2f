package workers

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/auditdb/auditdb/monitor"
)

// AlertWebhookArgs is one delivery of one alert event to one webhook. The
// job names the webhook by WebhookTarget, not by URL: webhook URLs often
// carry tokens, and job rows are read by anyone who can read the queue.
type AlertWebhookArgs struct {
	AlertID int64 `json:"alert_id"`
	// Event is monitor.AlertEventOpened or monitor.AlertEventResolved.
	Event string `json:"event"`
	// Target is WebhookTarget of the URL.
	Target string `json:"target"`
}

// Kind names the job in River.
func (AlertWebhookArgs) Kind() string { return "auditdb_alert_webhook" }

// InsertOpts: River retries a failed delivery with its backoff (attempt⁴
// seconds); ten attempts span about five hours.
func (AlertWebhookArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: Queue, MaxAttempts: 10}
}

// WebhookTarget names a webhook URL without revealing it: the first 16 hex
// digits of its SHA-256.
func WebhookTarget(webhookURL string) string {
	sum := sha256.Sum256([]byte(webhookURL))
	return hex.EncodeToString(sum[:8])
}

// AlertWebhooks enqueues an AlertWebhookArgs job per URL for every alert
// opened or resolved. Its Notify is the monitor.AlertNotifier of the
// suite's alert store, so deliveries commit with the alert.
type AlertWebhooks struct {
	// URLs are the webhooks. None: Notify does nothing.
	URLs []string
	// Client inserts the jobs. Nil takes the River client of the job the
	// alert is raised from; set it for alerts raised outside jobs.
	Client *river.Client[pgx.Tx]
}

// Notify enqueues the deliveries of one event in tx.
func (w *AlertWebhooks) Notify(ctx context.Context, tx pgx.Tx, a monitor.Alert, event string) error {
	if len(w.URLs) == 0 {
		return nil
	}
	client := w.Client
	if client == nil {
		var err error
		if client, err = river.ClientFromContextSafely[pgx.Tx](ctx); err != nil {
			return fmt.Errorf("alert webhooks: no River client to enqueue deliveries: %w", err)
		}
	}
	params := make([]river.InsertManyParams, len(w.URLs))
	for i, u := range w.URLs {
		params[i] = river.InsertManyParams{Args: AlertWebhookArgs{AlertID: a.ID, Event: event, Target: WebhookTarget(u)}}
	}
	if _, err := client.InsertManyTx(ctx, tx, params); err != nil {
		return fmt.Errorf("alert webhooks: enqueue: %w", err)
	}
	return nil
}

// AlertWebhookWorker works AlertWebhookArgs jobs.
type AlertWebhookWorker struct {
	river.WorkerDefaults[AlertWebhookArgs]
	Deps *Deps
	// URLs are the configured webhooks; a job whose target is not among
	// them (the configuration changed) is cancelled.
	URLs []string
	// HTTPClient posts. Defaults to a client with a 10s timeout.
	HTTPClient *http.Client
}

// Work delivers; see Deps.DeliverAlertWebhook.
func (w *AlertWebhookWorker) Work(ctx context.Context, job *river.Job[AlertWebhookArgs]) error {
	return w.Deps.DeliverAlertWebhook(ctx, w.HTTPClient, w.URLs, job.Args)
}

// Timeout bounds one delivery attempt.
func (w *AlertWebhookWorker) Timeout(*river.Job[AlertWebhookArgs]) time.Duration {
	return 30 * time.Second
}

// AlertWebhookBody is the JSON a webhook receives: the alert's kind,
// severity, status, message and identifiers. Messages and labels carry
// counts and names, never audit values.
type AlertWebhookBody struct {
	Source      string            `json:"source"` // always "auditdb"
	Event       string            `json:"event"`
	AlertID     int64             `json:"alert_id"`
	Kind        string            `json:"kind"`
	Severity    string            `json:"severity"`
	Status      string            `json:"status"`
	Message     string            `json:"message"`
	Labels      map[string]string `json:"labels"`
	Fingerprint string            `json:"fingerprint"`
	Occurrences int64             `json:"occurrences"`
	FirstSeen   time.Time         `json:"first_seen"`
	LastSeen    time.Time         `json:"last_seen"`
	ResolvedAt  *time.Time        `json:"resolved_at,omitempty"`
}

var defaultWebhookClient = &http.Client{Timeout: 10 * time.Second}

// DeliverAlertWebhook POSTs one alert event to the webhook named by
// args.Target. A 2xx answer delivers it; a network error, a 5xx, 408 or 429
// returns an error so that River retries; any other 4xx, an unknown target
// or a vanished alert cancels the job (retrying cannot help). Errors name
// the target, never the URL. The Idempotency-Key header lets receivers drop
// a repeat of a delivery whose answer was lost.
func (d *Deps) DeliverAlertWebhook(ctx context.Context, client *http.Client, urls []string, args AlertWebhookArgs) error {
	if client == nil {
		client = defaultWebhookClient
	}
	var target string
	for _, u := range urls {
		if WebhookTarget(u) == args.Target {
			target = u
			break
		}
	}
	if target == "" {
		return river.JobCancel(fmt.Errorf("alert webhook %s: no longer configured", args.Target))
	}
	a, err := monitor.NewAlertStore(d.Pool, monitor.AlertStoreOptions{}).Get(ctx, args.AlertID)
	if errors.Is(err, monitor.ErrAlertNotFound) {
		return river.JobCancel(err)
	}
	if err != nil {
		return err
	}
	body, err := json.Marshal(AlertWebhookBody{
		Source: "auditdb", Event: args.Event, AlertID: a.ID, Kind: a.Kind, Severity: a.Severity, Status: a.Status,
		Message: a.Message, Labels: a.Labels, Fingerprint: a.Fingerprint, Occurrences: a.Occurrences,
		FirstSeen: a.FirstSeen, LastSeen: a.LastSeen, ResolvedAt: a.ResolvedAt,
	})
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return river.JobCancel(fmt.Errorf("alert webhook %s: bad URL", args.Target))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "auditdb-alerts")
	req.Header.Set("Idempotency-Key", fmt.Sprintf("auditdb-alert-%d-%s", a.ID, args.Event))
	resp, err := client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // url.Error repeats the URL
		}
		return fmt.Errorf("alert webhook %s: %w", args.Target, err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	switch code := resp.StatusCode; {
	case code >= 200 && code < 300:
		d.logger().InfoContext(ctx, "alerts: webhook delivered", "alert_id", a.ID, "event", args.Event, "target", args.Target)
		return nil
	case code >= 400 && code < 500 && code != http.StatusRequestTimeout && code != http.StatusTooManyRequests:
		return river.JobCancel(fmt.Errorf("alert webhook %s: refused with status %d", args.Target, code))
	default:
		return fmt.Errorf("alert webhook %s: status %d", args.Target, code)
	}
}
