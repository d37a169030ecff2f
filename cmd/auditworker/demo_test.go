package main

import (
	"bufio"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// `make demo` starts a PostgreSQL and a redis-server of its own in temporary
// folders. However the demo ends - its output pipe closed (`make demo |
// head`: SIGPIPE, which no Go code sees), SIGTERM, Ctrl-C (SIGINT to the
// terminal's process group), a panic in a goroutine where no deferred call
// runs - no server keeps running and no folder stays. Each case runs the
// demo as a real process (this test binary doubles as auditworker) with
// TMPDIR set to a folder of its own, and checks that folder ends empty and
// that no process still names it.
func TestDemoCleansUpHoweverItEnds(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		env  []string
		// events per writer, and the output line after which the demo is ended
		events, after string
		end           func(t *testing.T, cmd *exec.Cmd, out *bufio.Reader, closeOut func())
		// how the process must have ended
		signal syscall.Signal
		code   int
	}{
		// the demo writes its next line when the writers are done, a few
		// seconds on: that write gets SIGPIPE
		{name: "sigpipe", events: "3000", after: "3. write", signal: syscall.SIGPIPE, end: func(t *testing.T, _ *exec.Cmd, _ *bufio.Reader, closeOut func()) {
			closeOut() // `| head` has read enough
		}},
		{name: "sigterm", events: "200000", after: "3. write", code: 1, end: func(t *testing.T, cmd *exec.Cmd, _ *bufio.Reader, _ func()) {
			require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
		}},
		{name: "ctrl-c", events: "200000", after: "3. write", code: 1, end: func(t *testing.T, cmd *exec.Cmd, _ *bufio.Reader, _ func()) {
			// the terminal signals the whole foreground process group
			require.NoError(t, syscall.Kill(-cmd.Process.Pid, syscall.SIGINT))
		}},
		// the panic comes right after the install step
		{name: "panic", events: "200000", after: "insert trigger", code: 2, env: []string{"AUDITWORKER_FAULT_DEMO_PANIC=1"}, end: func(*testing.T, *exec.Cmd, *bufio.Reader, func()) {}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			// like /tmp: the server's folder belongs to the postgres user
			// when the tests run as root, and it must be able to remove it
			tmp, err := os.MkdirTemp("", "auditdb-demo-cleanup-")
			require.NoError(t, err)
			require.NoError(t, os.Chmod(tmp, 0o1777))
			defer os.RemoveAll(tmp)

			cmd := exec.Command(os.Args[0], "demo", "--writers", "2", "--events", tc.events)
			cmd.Env = append(append(os.Environ(), "AUDITWORKER_TEST_EXEC=1", "TMPDIR="+tmp), tc.env...)
			cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
			r, w, err := os.Pipe()
			require.NoError(t, err)
			cmd.Stdout, cmd.Stderr = w, w
			require.NoError(t, cmd.Start())
			w.Close()
			out := bufio.NewReader(r)
			closed := false
			closeOut := func() { closed = true; r.Close() }
			defer func() {
				if !closed {
					r.Close()
				}
			}()
			// wait until the servers run and the writers write
			var seen strings.Builder
			for !strings.Contains(seen.String(), tc.after) {
				line, err := out.ReadString('\n')
				seen.WriteString(line)
				require.NoError(t, err, "demo output so far:\n%s", seen.String())
			}
			require.NotEmpty(t, entries(t, tmp), "the demo's servers have their folders in TMPDIR")
			tc.end(t, cmd, out, closeOut)
			if !closed {
				go func() { _, _ = out.WriteTo(discard{}) }()
			}
			waited := make(chan error, 1)
			go func() { waited <- cmd.Wait() }()
			select {
			case err = <-waited:
			case <-time.After(90 * time.Second):
				_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
				t.Fatal("the demo did not end")
			}
			var ee *exec.ExitError
			require.True(t, errors.As(err, &ee), "the demo ended with %v", err)
			ws := ee.Sys().(syscall.WaitStatus)
			if tc.signal != 0 {
				require.True(t, ws.Signaled(), "ended by a signal: %v", err)
				require.Equal(t, tc.signal, ws.Signal())
			} else {
				require.Equal(t, tc.code, ws.ExitStatus(), "exit code")
			}
			require.Eventually(t, func() bool { return len(entries(t, tmp)) == 0 && len(processesNaming(tmp)) == 0 },
				30*time.Second, 100*time.Millisecond, "left behind: %v, processes: %v", entries(t, tmp), processesNaming(tmp))
		})
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

func entries(t *testing.T, dir string) []string {
	des, err := os.ReadDir(dir)
	require.NoError(t, err)
	var out []string
	for _, de := range des {
		out = append(out, de.Name())
	}
	return out
}

// processesNaming lists the command lines of processes whose command line
// or working directory is inside dir (a postgres or redis-server started
// there).
func processesNaming(dir string) []string {
	var out []string
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range procs {
		cmdline, err := os.ReadFile(filepath.Join(p, "cmdline"))
		if err != nil {
			continue
		}
		cwd, _ := os.Readlink(filepath.Join(p, "cwd"))
		line := strings.ReplaceAll(string(cmdline), "\x00", " ")
		if strings.Contains(line, dir) || strings.HasPrefix(cwd, dir) {
			out = append(out, line)
		}
	}
	return out
}
