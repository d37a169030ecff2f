// Package watchdog cleans up after a process however it ends.
//
// A process that starts servers of its own (the embedded PostgreSQL and
// Redis of `auditworker demo` and `dev`) stops them in deferred calls, but
// deferred calls do not run when the process is killed by a signal it does
// not handle (SIGPIPE when its output pipe closes, SIGKILL) or by a panic
// in another goroutine. A watchdog is a small shell process, in a process
// group of its own (so the terminal's Ctrl-C does not reach it), that
// reads its stdin, a pipe whose other end only this process holds: the
// kernel closes that end when this process ends, whatever the cause, and
// the watchdog then runs its cleanup script. After a clean stop, release
// closes the pipe and the script finds nothing left to do.
package watchdog

import (
	"fmt"
	"os/exec"
	"syscall"
)

// Start starts a watchdog that runs script (sh syntax, with args as $1,
// $2, ...) once this process ends or release is called, as cred (nil: as
// this process's user). The script must be harmless when there is nothing
// left to clean up.
func Start(script string, args []string, cred *syscall.Credential) (release func(), err error) {
	cmd := exec.Command("/bin/sh", append([]string{"-c", "cat >/dev/null; " + script, "auditdb-watchdog"}, args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: cred}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("watchdog: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("watchdog: start: %w", err)
	}
	return func() {
		_ = stdin.Close()
		_ = cmd.Wait()
	}, nil
}
