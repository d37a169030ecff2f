package main

import (
	"errors"
	"fmt"
	"io"
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
		Usage: "seal keys (HMAC) and anchor keys (Ed25519)",
		Subcommands: []*cli.Command{{
			Name:  "generate",
			Usage: "print a new random key: a seal key as keyid:base64key, or (--kind anchor) an anchor key as keyid:base64(32-byte Ed25519 seed)",
			Flags: []cli.Flag{
				&cli.StringFlag{Name: "id", Usage: "key id (default: k and today's date, UTC; a for anchor keys)", EnvVars: []string{"AUDIT_SEAL_KEY_ID"}},
				&cli.StringFlag{Name: "kind", Value: "seal", Usage: "seal or anchor", EnvVars: []string{"AUDIT_KEY_KIND"}},
				jsonFlag(),
			},
			Action: func(c *cli.Context) error {
				id := c.String("id")
				if id == "" {
					id = time.Now().UTC().Format("k20060102")
					if c.String("kind") == "anchor" {
						id = time.Now().UTC().Format("a20060102")
					}
				}
				var entry string
				var err error
				switch c.String("kind") {
				case "seal":
					entry, err = integrity.GenerateSealKey(id)
				case "anchor":
					entry, err = integrity.GenerateAnchorKey(id)
					if err != nil {
						return fmt.Errorf("id: %w", err)
					}
					if c.Bool("json") {
						return printJSON(c.App.Writer, map[string]string{"key_id": id, "entry": entry})
					}
					fmt.Fprintln(c.App.Writer, entry)
					if isTerminal(c.App.ErrWriter) {
						fmt.Fprintln(c.App.ErrWriter, "keep it out of the database: AUDIT_ANCHOR_KEY or AUDIT_ANCHOR_KEY_FILE on the worker; give verifiers `auditworker keys public` of it")
					}
					return nil
				default:
					return errors.New("kind: want seal or anchor")
				}
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
		}, {
			Name:  "public",
			Usage: "read an anchor key line keyid:base64seed on stdin and print keyid:base64(public key), what verifiers and witnesses are given",
			Flags: []cli.Flag{jsonFlag()},
			Action: func(c *cli.Context) error {
				line, err := io.ReadAll(io.LimitReader(c.App.Reader, 4096))
				if err != nil {
					return fmt.Errorf("stdin: %w", err)
				}
				s, err := integrity.ParseAnchorPrivateKey(string(line), "stdin")
				if err != nil {
					return err
				}
				if c.Bool("json") {
					return printJSON(c.App.Writer, map[string]string{"key_id": s.ID, "public": s.PublicLine()})
				}
				fmt.Fprintln(c.App.Writer, s.PublicLine())
				return nil
			},
		}},
	}
}
