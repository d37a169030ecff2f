package main

import (
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/urfave/cli/v2"

	"github.com/auditdb/auditdb/workers"
)

func sealCommand() *cli.Command {
	return &cli.Command{
		Name:  "seal",
		Usage: "write HMAC checkpoints for every chain whose head moved (exit 2 when a head does not match its row)",
		Flags: append(sealKeyFlags(), jsonFlag()),
		Action: func(c *cli.Context) error {
			keys, err := sealKeys(c)
			if err != nil {
				return err
			}
			return withPool(func(c *cli.Context, pool *pgxpool.Pool) error {
				deps := &workers.Deps{Pool: pool, Keys: keys, Logger: cliLogger(c), FaultHooks: testFaultHooks()}
				var opts workers.SealOptions
				if isTerminal(c.App.ErrWriter) {
					start := time.Now()
					opts.Progress = func(done, total int64) { progressBar(c.App.ErrWriter, "seal", "chains", done, total, start) }
				}
				rep, err := deps.Seal(c.Context, opts)
				if opts.Progress != nil {
					fmt.Fprintln(c.App.ErrWriter)
				}
				if err != nil {
					return err
				}
				if c.Bool("json") {
					if err := printJSON(c.App.Writer, rep); err != nil {
						return err
					}
				} else {
					fmt.Fprintf(c.App.Writer, "sealed %d chain(s) with key %s, %d already sealed at their head, in %s\n",
						rep.Sealed(), rep.KeyID, rep.Unchanged, rep.Duration.Round(time.Millisecond))
					if len(rep.Chains) > 0 {
						rows := make([][]string, len(rep.Chains))
						for i, ch := range rep.Chains {
							rows[i] = []string{fmt.Sprint(ch.ChainID), fmt.Sprint(ch.ChainSeq), ch.State}
						}
						fmt.Fprintln(c.App.Writer)
						table(c.App.Writer, []string{"CHAIN", "SEQ", "STATE"}, rows)
					}
				}
				for _, ch := range rep.Chains {
					if ch.State == workers.SealStateHeadMismatch {
						return &exitError{code: 2, msg: fmt.Sprintf("chain %d: audit.chain_heads does not match the row at its seq; not sealed", ch.ChainID)}
					}
				}
				return nil
			})(c)
		},
	}
}

// faultHooks, set only by the tests' TestMain (the test binary doubles as
// the auditworker binary there), injects faults into the worker. Nil in the
// real binary, which reads no fault-injection setting at all.
var faultHooks func() *workers.FaultHooks

func testFaultHooks() *workers.FaultHooks {
	if faultHooks == nil {
		return nil
	}
	return faultHooks()
}
