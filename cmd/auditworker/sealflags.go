package main

import (
	"github.com/urfave/cli/v2"

	"github.com/auditdb/auditdb/internal/integrity"
)

// sealKeyFlags are the flags of every command that seals or checks seals.
func sealKeyFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "seal-keys", Usage: "seal keys, keyid:base64key,... (prefer the file or the environment: flags show in ps)", EnvVars: []string{"AUDIT_SEAL_KEYS"}},
		&cli.StringFlag{Name: "seal-keys-file", Usage: "file of seal keys, one keyid:base64key per line", EnvVars: []string{"AUDIT_SEAL_KEYS_FILE"}},
		&cli.StringFlag{Name: "seal-active-key", Usage: "key id new seals use (required with several keys)", EnvVars: []string{"AUDIT_SEAL_ACTIVE_KEY"}},
	}
}

// sealKeys reads the keys given by sealKeyFlags; integrity.ErrNoSealKeys
// when none is configured.
func sealKeys(c *cli.Context) (*integrity.SealKeys, error) {
	vals := map[string]string{
		"AUDIT_SEAL_KEYS":       c.String("seal-keys"),
		"AUDIT_SEAL_KEYS_FILE":  c.String("seal-keys-file"),
		"AUDIT_SEAL_ACTIVE_KEY": c.String("seal-active-key"),
	}
	return integrity.SealKeysFromEnv(func(k string) string { return vals[k] })
}
