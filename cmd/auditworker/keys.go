package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/auditdb/auditdb/integrity"
)

// sealKeyFlags are the seal key settings of every command that seals or
// checks seals. The environment (or a file) is the better place for keys:
// command lines show in ps.
func sealKeyFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "seal-keys", Usage: "seal keys, keyid:base64key[,...] (prefer the environment or --seal-keys-file: flags show in ps)", EnvVars: []string{"AUDIT_SEAL_KEYS"}},
		&cli.StringFlag{Name: "seal-active-key", Usage: "key id new seals use (required with several keys)", EnvVars: []string{"AUDIT_SEAL_ACTIVE_KEY"}},
		&cli.StringFlag{Name: "seal-keys-file", Usage: "file with one keyid:base64key per line, and optionally active=keyid (run re-reads it on SIGHUP)", EnvVars: []string{"AUDIT_SEAL_KEYS_FILE"}},
	}
}

// sealKeys reads the keys of sealKeyFlags; integrity.ErrNoSealKeys when
// none is configured.
func sealKeys(c *cli.Context) (*integrity.SealKeys, error) {
	flags := map[string]string{
		"AUDIT_SEAL_KEYS": "seal-keys", "AUDIT_SEAL_ACTIVE_KEY": "seal-active-key", "AUDIT_SEAL_KEYS_FILE": "seal-keys-file",
	}
	return integrity.SealKeysFromEnv(func(name string) string { return c.String(flags[name]) })
}

// optionalSealKeys is sealKeys for commands that work without keys.
func optionalSealKeys(c *cli.Context) (*integrity.SealKeys, error) {
	k, err := sealKeys(c)
	if errors.Is(err, integrity.ErrNoSealKeys) {
		return nil, nil
	}
	return k, err
}

func keysCommand() *cli.Command {
	return &cli.Command{
		Name:  "keys",
		Usage: "seal keys",
		Subcommands: []*cli.Command{{
			Name:  "generate",
			Usage: "print a new random seal key as keyid:base64key",
			Flags: []cli.Flag{
				&cli.StringFlag{Name: "id", Usage: "key id (default: k and today's date, UTC)", EnvVars: []string{"AUDIT_SEAL_KEY_ID"}},
				jsonFlag(),
			},
			Action: func(c *cli.Context) error {
				id := c.String("id")
				if id == "" {
					id = time.Now().UTC().Format("k20060102")
				}
				entry, err := integrity.GenerateSealKey(id)
				if err != nil {
					return fmt.Errorf("id: %w", err)
				}
				if c.Bool("json") {
					return printJSON(c.App.Writer, map[string]string{"key_id": id, "entry": entry})
				}
				fmt.Fprintln(c.App.Writer, entry)
				if isTerminal(c.App.ErrWriter) {
					fmt.Fprintf(c.App.ErrWriter, "add it to AUDIT_SEAL_KEYS (or AUDIT_SEAL_KEYS_FILE) on every worker, then set AUDIT_SEAL_ACTIVE_KEY=%s; keep the old keys so old seals still verify\n", id)
				}
				return nil
			},
		}},
	}
}
