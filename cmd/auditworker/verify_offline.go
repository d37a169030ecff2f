package main

import (
	"errors"

	"github.com/urfave/cli/v2"
)

// verifyOffline checks bundles and archives with no database.
func verifyOffline(c *cli.Context) error {
	return errors.New("offline: not built yet")
}
