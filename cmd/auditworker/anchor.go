package main

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/urfave/cli/v2"

	"github.com/auditdb/auditdb/anchor"
	"github.com/auditdb/auditdb/integrity"
	"github.com/auditdb/auditdb/workers"
)

// anchorKeyFlags are the anchoring key's settings. As with seal keys, the
// environment or a file is the better place: command lines show in ps.
func anchorKeyFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "anchor-key", Usage: "anchor signing key, keyid:base64seed (prefer the environment or --anchor-key-file)", EnvVars: []string{"AUDIT_ANCHOR_KEY"}},
		&cli.StringFlag{Name: "anchor-key-file", Usage: "file holding the anchor signing key line", EnvVars: []string{"AUDIT_ANCHOR_KEY_FILE"}},
	}
}

// anchorSinkFlags are where bundles go and for how long they are locked.
func anchorSinkFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "sink", Usage: "where bundles go: a directory, or s3://bucket/prefix (AWS_* variables)", EnvVars: []string{"AUDIT_ANCHOR_SINK"}},
		&cli.DurationFlag{Name: "anchor-retain", Value: workers.AnchorRetainDefault, Usage: "Object Lock COMPLIANCE retention of each bundle where the bucket has Object Lock", EnvVars: []string{"AUDIT_ANCHOR_RETAIN"}},
	}
}

// anchorSigner reads the anchor key of anchorKeyFlags; errors name the
// setting, never the key. integrity.ErrNoAnchorKey when none is set.
func anchorSigner(c *cli.Context) (*integrity.AnchorSigner, error) {
	flags := map[string]string{"AUDIT_ANCHOR_KEY": "anchor-key", "AUDIT_ANCHOR_KEY_FILE": "anchor-key-file"}
	return integrity.AnchorKeyFromEnv(func(name string) string { return c.String(flags[name]) })
}

// anchorSetup builds the anchoring setup from the flags: nil when neither
// a key nor a sink is configured; an error when only one is, or either is
// bad.
func anchorSetup(c *cli.Context) (*workers.AnchorSetup, error) {
	signer, err := anchorSigner(c)
	if errors.Is(err, integrity.ErrNoAnchorKey) {
		if c.String("sink") != "" {
			return nil, fmt.Errorf("sink is set but %w", err)
		}
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if c.String("sink") == "" {
		return nil, errors.New("sink: required with an anchor key (AUDIT_ANCHOR_SINK: a directory or s3://bucket/prefix)")
	}
	if c.Duration("anchor-retain") < 0 {
		return nil, errors.New("anchor-retain: must not be negative")
	}
	sink, err := anchor.OpenSink(c.Context, c.String("sink"))
	if err != nil {
		return nil, fmt.Errorf("sink: %w", err)
	}
	return &workers.AnchorSetup{Signer: signer, Sink: sink, Retain: c.Duration("anchor-retain")}, nil
}

func anchorCommand() *cli.Command {
	return &cli.Command{
		Name:  "anchor",
		Usage: "write one signed bundle of every chain head to the sink now (after a seal, when a seal key is set)",
		Flags: append(append(append([]cli.Flag{jsonFlag()}, anchorKeyFlags()...), anchorSinkFlags()...), sealKeyFlags()...),
		Action: func(c *cli.Context) error {
			setup, err := anchorSetup(c)
			if err != nil {
				return err
			}
			if setup == nil {
				return integrity.ErrNoAnchorKey
			}
			keys, err := optionalSealKeys(c)
			if err != nil {
				return err
			}
			return withPool(func(c *cli.Context, pool *pgxpool.Pool) error {
				deps := &workers.Deps{Pool: pool, Keys: keys, Anchors: setup, Logger: cliLogger(c), FaultHooks: testFaultHooks()}
				rep, err := deps.Anchor(c.Context)
				if err != nil {
					return err
				}
				if c.Bool("json") {
					return printJSON(c.App.Writer, rep)
				}
				printAnchorReport(c.App.Writer, rep)
				return nil
			})(c)
		},
		Subcommands: []*cli.Command{cosignCommand()},
	}
}

func printAnchorReport(w io.Writer, rep *workers.AnchorReport) {
	state := "written"
	switch {
	case !rep.Written:
		state = "already in the sink (same statement)"
	case rep.Resumed:
		state = "written (finishing an interrupted run)"
	}
	lock := "no Object Lock (the sink cannot enforce retention)"
	if rep.Locked {
		lock = "Object Lock COMPLIANCE until " + rep.RetainUntil.Format(time.DateOnly)
	}
	table(w, []string{"LOG", "BUNDLE", "CHAINS", "ROOT", "KEY", "SINK", "STATE", "RETENTION"}, [][]string{{
		rep.LogID, fmt.Sprint(rep.Bundle), fmt.Sprint(rep.Chains), rep.Root[:16] + "…", rep.Key, rep.Sink, state, lock}})
}

func cosignCommand() *cli.Command {
	return &cli.Command{
		Name: "cosign",
		Usage: "as a witness (no database): check each new bundle in the sink against the last one this witness cosigned, " +
			"then add its signature; a fork is refused for good (exit 2)",
		Flags: []cli.Flag{
			jsonFlag(),
			&cli.StringFlag{Name: "sink", Usage: "the log's sink: a directory, or s3://bucket/prefix", EnvVars: []string{"AUDIT_ANCHOR_SINK"}},
			&cli.StringFlag{Name: "key-file", Usage: "the witness's own key file (keyid:base64seed, `auditworker keys generate --kind anchor`)", EnvVars: []string{"AUDIT_WITNESS_KEY_FILE"}},
			&cli.StringFlag{Name: "state", Usage: "the witness's state directory: what it cosigned", EnvVars: []string{"AUDIT_WITNESS_STATE"}},
			&cli.StringFlag{Name: "anchor-keys", Usage: "the log's anchor public keys, keyid:base64pub[,...]", EnvVars: []string{"AUDIT_ANCHOR_KEYS"}},
			&cli.StringFlag{Name: "log", Usage: "log id to cosign (default: the only log in the sink)", EnvVars: []string{"AUDIT_LOG_ID"}},
			&cli.DurationFlag{Name: "anchor-retain", Value: workers.AnchorRetainDefault, Usage: "Object Lock retention of each cosignature where the bucket has it", EnvVars: []string{"AUDIT_ANCHOR_RETAIN"}},
		},
		Action: func(c *cli.Context) error {
			for _, name := range []string{"sink", "key-file", "state", "anchor-keys"} {
				if c.String(name) == "" {
					return fmt.Errorf("%s: required", name)
				}
			}
			signer, err := integrity.ReadAnchorKeyFile(c.String("key-file"), "key-file")
			if err != nil {
				return err
			}
			keys, err := integrity.ParseAnchorKeys(c.String("anchor-keys"), "anchor-keys")
			if err != nil {
				return err
			}
			sink, err := anchor.OpenSink(c.Context, c.String("sink"))
			if err != nil {
				return fmt.Errorf("sink: %w", err)
			}
			opts := anchor.WitnessOptions{LogID: c.String("log"), LogKeys: keys, Signer: signer, StateDir: c.String("state")}
			if d := c.Duration("anchor-retain"); d > 0 {
				opts.RetainUntil = time.Now().Add(d).UTC().Truncate(time.Second)
			}
			rep, err := anchor.Cosign(c.Context, sink, opts)
			if err != nil {
				if errors.Is(err, anchor.ErrForked) || errors.Is(err, anchor.ErrRefused) {
					return &exitError{code: 2, msg: oneLine(err.Error())}
				}
				return err
			}
			if c.Bool("json") {
				return printJSON(c.App.Writer, rep)
			}
			fmt.Fprintf(c.App.Writer, "witness %s, log %s: cosigned %d bundle(s) %v; newest cosigned %d; %d earlier bundle(s) re-checked\n",
				signer.ID, rep.Log, len(rep.Cosigned), rep.Cosigned, rep.Last, rep.Checked)
			return nil
		},
	}
}
