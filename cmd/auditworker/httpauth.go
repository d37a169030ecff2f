package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/auditdb/auditdb/workers"
)

// metricsTokenFlags are run's settings of the bearer token /metrics needs.
// The environment or the file is the place for it: a flag shows in ps.
func metricsTokenFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "metrics-token", EnvVars: []string{"AUDIT_METRICS_TOKEN"},
			Usage: "bearer token /metrics requires (at least 16 characters; prefer the environment or --metrics-token-file: flags show in ps); default: /metrics open"},
		&cli.StringFlag{Name: "metrics-token-file", EnvVars: []string{"AUDIT_METRICS_TOKEN_FILE"},
			Usage: "file holding the bearer token /metrics requires (surrounding whitespace ignored)"},
	}
}

// httpConfig reads run's HTTP settings. Errors name the setting, never the
// token.
func httpConfig(c *cli.Context) (workers.HTTPConfig, error) {
	var cfg workers.HTTPConfig
	token, file := c.String("metrics-token"), c.String("metrics-token-file")
	switch {
	case token != "" && file != "":
		return cfg, errors.New("metrics-token, metrics-token-file: set one, not both")
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return cfg, fmt.Errorf("metrics-token-file: %w", err)
		}
		if token = strings.TrimSpace(string(b)); token == "" {
			return cfg, errors.New("metrics-token-file: the file is empty")
		}
	}
	cfg.MetricsToken = token
	if err := cfg.Validate(); err != nil {
		name := "metrics-token"
		if file != "" {
			name = "metrics-token-file"
		}
		return cfg, fmt.Errorf("%s: %s", name, strings.TrimPrefix(err.Error(), "MetricsToken: "))
	}
	return cfg, nil
}
