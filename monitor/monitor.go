package monitor

// Monitor times the queries of the pool its Tracer is attached to and
// checks the health of a deployment. Make one with New; it is safe for
// concurrent use.
type Monitor struct {
	cfg     Config
	queries *QueryTracer
}

// New makes a Monitor from cfg, with its defaults applied and validated.
func New(cfg Config) (*Monitor, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.WithDefaults()
	return &Monitor{cfg: cfg, queries: NewQueryTracer(cfg)}, nil
}

// Queries returns the QueryTracer inside Tracer: query statistics and the
// slow-query log.
func (m *Monitor) Queries() *QueryTracer { return m.queries }
