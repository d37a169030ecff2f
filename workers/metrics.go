package workers

import (
	"context"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/auditdb/auditdb/integrity"
	"github.com/auditdb/auditdb/internal/migrate"
)

// Metrics are a Suite's Prometheus metrics, in a registry of their own (no
// global registry: several suites, and parallel tests, live in one
// process). Labels carry chain ids, job kinds, states and modes only. A nil
// *Metrics records nothing.
type Metrics struct {
	reg *prometheus.Registry

	jobs        *prometheus.CounterVec
	jobDuration *prometheus.HistogramVec

	verifyRuns     *prometheus.CounterVec
	verifyDuration *prometheus.HistogramVec
	verifyRows     *prometheus.CounterVec
	verifyFindings *prometheus.GaugeVec
	verifyLast     *prometheus.GaugeVec

	sealDuration prometheus.Histogram
	checkpoints  prometheus.Counter
}

// scrapeTimeout bounds the database queries made while /metrics is scraped.
const scrapeTimeout = 5 * time.Second

func newMetrics(pool *pgxpool.Pool, states func(context.Context) ([]ChainState, error)) *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		jobs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "auditdb_jobs_total", Help: "River jobs worked by this process, by kind and outcome (completed, failed, cancelled, snoozed).",
		}, []string{"kind", "state"}),
		jobDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "auditdb_job_duration_seconds", Help: "Time River jobs of this process spent running, by kind.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 10),
		}, []string{"kind"}),
		verifyRuns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "auditdb_verification_runs_total", Help: "Verification runs by mode (full, incremental) and status (intact, tampered, failed).",
		}, []string{"mode", "status"}),
		verifyDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "auditdb_verification_duration_seconds", Help: "Duration of verification runs by mode.",
			Buckets: prometheus.ExponentialBuckets(0.01, 4, 10),
		}, []string{"mode"}),
		verifyRows: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "auditdb_verification_rows_checked_total", Help: "Rows re-hashed by verification runs, by mode.",
		}, []string{"mode"}),
		verifyFindings: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "auditdb_verification_last_findings", Help: "Findings of the last verification run of this process, by mode.",
		}, []string{"mode"}),
		verifyLast: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "auditdb_verification_last_run_timestamp_seconds", Help: "When the last verification run of this process finished, by mode and status.",
		}, []string{"mode", "status"}),
		sealDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "auditdb_seal_duration_seconds", Help: "Duration of seals.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 8),
		}),
		checkpoints: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "auditdb_checkpoints_written_total", Help: "HMAC checkpoints written by this process.",
		}),
	}
	m.reg.MustRegister(m.jobs, m.jobDuration, m.verifyRuns, m.verifyDuration, m.verifyRows, m.verifyFindings,
		m.verifyLast, m.sealDuration, m.checkpoints,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		&chainCollector{states: states}, &riverJobsCollector{pool: pool}, &poolCollector{pool: pool})
	return m
}

func (m *Metrics) observeJob(kind, state string, run time.Duration) {
	if m == nil {
		return
	}
	m.jobs.WithLabelValues(kind, state).Inc()
	m.jobDuration.WithLabelValues(kind).Observe(run.Seconds())
}

func (m *Metrics) observeSeal(rep *SealReport) {
	if m == nil {
		return
	}
	m.sealDuration.Observe(rep.Duration.Seconds())
	m.checkpoints.Add(float64(rep.Sealed()))
}

func (m *Metrics) observeVerify(mode string, rep *integrity.Report, err error) {
	if m == nil {
		return
	}
	if err != nil {
		m.verifyRuns.WithLabelValues(mode, "failed").Inc()
		m.verifyLast.WithLabelValues(mode, "failed").SetToCurrentTime()
		return
	}
	m.verifyRuns.WithLabelValues(mode, rep.Status).Inc()
	m.verifyDuration.WithLabelValues(mode).Observe(rep.Duration.Seconds())
	m.verifyRows.WithLabelValues(mode).Add(float64(rep.RowsChecked))
	m.verifyFindings.WithLabelValues(mode).Set(float64(len(rep.Findings)))
	m.verifyLast.WithLabelValues(mode, rep.Status).SetToCurrentTime()
}

var (
	chainHeadDesc     = prometheus.NewDesc("auditdb_chain_head_seq", "Newest chain_seq of each chain (audit.chain_heads).", []string{"chain"}, nil)
	chainRowsDesc     = prometheus.NewDesc("auditdb_chain_rows", "Rows of each chain still in audit_log (head minus archived rows).", []string{"chain"}, nil)
	chainSealedDesc   = prometheus.NewDesc("auditdb_chain_sealed_seq", "chain_seq of each chain's newest checkpoint.", []string{"chain"}, nil)
	chainLagDesc      = prometheus.NewDesc("auditdb_chain_seal_lag_seconds", "Age of each chain's oldest row after its newest checkpoint (0 when sealed).", []string{"chain"}, nil)
	sealLagDesc       = prometheus.NewDesc("auditdb_seal_lag_seconds", "Largest seal lag over all chains.", nil, nil)
	scrapeErrDesc     = prometheus.NewDesc("auditdb_scrape_error", "1 when the database could not be read for this scrape's chain and job metrics.", []string{"source"}, nil)
	riverJobsDesc     = prometheus.NewDesc("auditdb_river_jobs", "River jobs in the database by kind and state (all workers).", []string{"kind", "state"}, nil)
	poolAcquiredDesc  = prometheus.NewDesc("auditdb_db_pool_acquired_connections", "Connections in use.", nil, nil)
	poolIdleDesc      = prometheus.NewDesc("auditdb_db_pool_idle_connections", "Idle connections.", nil, nil)
	poolTotalDesc     = prometheus.NewDesc("auditdb_db_pool_connections", "Open connections.", nil, nil)
	poolMaxDesc       = prometheus.NewDesc("auditdb_db_pool_max_connections", "Largest size of the pool.", nil, nil)
	poolAcquiresDesc  = prometheus.NewDesc("auditdb_db_pool_acquires_total", "Connections acquired from the pool.", nil, nil)
	poolAcqWaitDesc   = prometheus.NewDesc("auditdb_db_pool_acquire_wait_seconds_total", "Time spent acquiring connections.", nil, nil)
	poolEmptyAcqDesc  = prometheus.NewDesc("auditdb_db_pool_empty_acquires_total", "Acquires that had to wait for a connection.", nil, nil)
	poolCanceledDesc  = prometheus.NewDesc("auditdb_db_pool_canceled_acquires_total", "Acquires canceled by their context.", nil, nil)
	poolNewConnsDesc  = prometheus.NewDesc("auditdb_db_pool_new_connections_total", "Connections opened.", nil, nil)
	poolDestroyedDesc = prometheus.NewDesc("auditdb_db_pool_lifetime_destroyed_connections_total", "Connections closed for reaching their maximum lifetime.", nil, nil)
)

// chainCollector reads chain states at scrape time: always current, and
// identical on every replica.
type chainCollector struct {
	states func(context.Context) ([]ChainState, error)
}

func (c *chainCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{chainHeadDesc, chainRowsDesc, chainSealedDesc, chainLagDesc, sealLagDesc, scrapeErrDesc} {
		ch <- d
	}
}

func (c *chainCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	states, err := c.states(ctx)
	ch <- prometheus.MustNewConstMetric(scrapeErrDesc, prometheus.GaugeValue, boolValue(err != nil), "chains")
	if err != nil {
		return
	}
	for _, s := range states {
		id := strconv.Itoa(int(s.ChainID))
		ch <- prometheus.MustNewConstMetric(chainHeadDesc, prometheus.GaugeValue, float64(s.HeadSeq), id)
		ch <- prometheus.MustNewConstMetric(chainRowsDesc, prometheus.GaugeValue, float64(s.Rows), id)
		ch <- prometheus.MustNewConstMetric(chainSealedDesc, prometheus.GaugeValue, float64(s.SealedSeq), id)
		ch <- prometheus.MustNewConstMetric(chainLagDesc, prometheus.GaugeValue, s.SealLag.Seconds(), id)
	}
	ch <- prometheus.MustNewConstMetric(sealLagDesc, prometheus.GaugeValue, MaxSealLag(states).Seconds())
}

type riverJobsCollector struct{ pool *pgxpool.Pool }

func (c *riverJobsCollector) Describe(ch chan<- *prometheus.Desc) { ch <- riverJobsDesc }

func (c *riverJobsCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	counts, err := JobCounts(ctx, c.pool)
	if err != nil {
		ch <- prometheus.MustNewConstMetric(scrapeErrDesc, prometheus.GaugeValue, 1, "river_jobs")
		return
	}
	for _, jc := range counts {
		ch <- prometheus.MustNewConstMetric(riverJobsDesc, prometheus.GaugeValue, float64(jc.Count), jc.Kind, jc.State)
	}
}

type poolCollector struct{ pool *pgxpool.Pool }

func (c *poolCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{poolAcquiredDesc, poolIdleDesc, poolTotalDesc, poolMaxDesc, poolAcquiresDesc,
		poolAcqWaitDesc, poolEmptyAcqDesc, poolCanceledDesc, poolNewConnsDesc, poolDestroyedDesc} {
		ch <- d
	}
}

func (c *poolCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.pool.Stat()
	g, n := prometheus.GaugeValue, prometheus.CounterValue
	ch <- prometheus.MustNewConstMetric(poolAcquiredDesc, g, float64(s.AcquiredConns()))
	ch <- prometheus.MustNewConstMetric(poolIdleDesc, g, float64(s.IdleConns()))
	ch <- prometheus.MustNewConstMetric(poolTotalDesc, g, float64(s.TotalConns()))
	ch <- prometheus.MustNewConstMetric(poolMaxDesc, g, float64(s.MaxConns()))
	ch <- prometheus.MustNewConstMetric(poolAcquiresDesc, n, float64(s.AcquireCount()))
	ch <- prometheus.MustNewConstMetric(poolAcqWaitDesc, n, s.AcquireDuration().Seconds())
	ch <- prometheus.MustNewConstMetric(poolEmptyAcqDesc, n, float64(s.EmptyAcquireCount()))
	ch <- prometheus.MustNewConstMetric(poolCanceledDesc, n, float64(s.CanceledAcquireCount()))
	ch <- prometheus.MustNewConstMetric(poolNewConnsDesc, n, float64(s.NewConnsCount()))
	ch <- prometheus.MustNewConstMetric(poolDestroyedDesc, n, float64(s.MaxLifetimeDestroyCount()))
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// JobCount is the number of River jobs of one kind in one state.
type JobCount struct {
	Kind  string `json:"kind"`
	State string `json:"state"`
	Count int64  `json:"count"`
}

// JobCounts counts the River jobs in the database by kind and state (every
// worker's, as kept by River's retention: completed jobs for a day).
func JobCounts(ctx context.Context, pool *pgxpool.Pool) ([]JobCount, error) {
	rows, err := pool.Query(ctx, `SELECT kind, state::text, count(*) FROM `+migrate.RiverSchema+`.river_job GROUP BY 1, 2 ORDER BY 1, 2`)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowToStructByPos[JobCount])
}
