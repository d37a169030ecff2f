package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"
)

// oneArg returns the command's one argument; what names it in errors.
// urfave/cli v2 reads no flags after the first argument, so a flag typed
// after it ("alerts ack 5 --by alice") arrives here as one more argument:
// the error says so, naming the flag but never a value.
func oneArg(c *cli.Context, what string) (string, error) {
	args := c.Args().Slice()
	for i, a := range args {
		if i > 0 && len(a) > 1 && a[0] == '-' {
			flag, _, _ := strings.Cut(a, "=")
			return "", fmt.Errorf("%s: put %s before the %s: flags after an argument are not read", c.Command.Name, flag, what)
		}
	}
	if len(args) != 1 || args[0] == "" {
		return "", fmt.Errorf("%s: give one %s", c.Command.Name, what)
	}
	return args[0], nil
}

// idArg is oneArg for a positive integer id.
func idArg(c *cli.Context, what string) (int64, error) {
	s, err := oneArg(c, what)
	if err != nil {
		return 0, err
	}
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id <= 0 {
		// not repeated: a mistyped argument may be anything, a patient id included
		return 0, fmt.Errorf("%s: %s must be a positive number", c.Command.Name, what)
	}
	return id, nil
}
