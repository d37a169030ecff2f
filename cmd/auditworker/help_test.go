package main

import (
	"io"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

// No flag's help says its default twice: urfave/cli appends "(default:
// X)" for any flag with a non-empty default (an int's 0 included), so a
// usage text that states its own default must belong to a flag without one.
func TestHelpStatesEachDefaultOnce(t *testing.T) {
	t.Parallel()
	app := newApp(io.Discard, io.Discard)
	var walk func(path string, flags []cli.Flag, cmds []*cli.Command)
	walk = func(path string, flags []cli.Flag, cmds []*cli.Command) {
		for _, f := range flags {
			if line := f.String(); strings.Count(line, "(default") > 1 {
				t.Errorf("%s: %s", path, line)
			}
		}
		for _, c := range cmds {
			walk(path+" "+c.Name, c.Flags, c.Subcommands)
		}
	}
	walk("auditworker", app.Flags, app.Commands)
}
