// Package embeddedredis runs a private redis-server from the machine's own
// binary on a free loopback port, persistence off, in a temporary folder:
// the Redis of the embedded default (`auditworker dev`) and of the test
// harness.
package embeddedredis

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/auditdb/auditdb/internal/watchdog"
)

// ErrNotInstalled means there is no redis-server on PATH.
var ErrNotInstalled = errors.New("embeddedredis: redis-server is not installed (apt-get install -y redis-server)")

// Server is a running private Redis.
type Server struct {
	URL string
	cmd *exec.Cmd
	dir string
}

// Start starts redis-server on a free port and waits until it answers PING.
func Start(ctx context.Context) (*Server, error) { return StartPort(ctx, 0) }

// StartPort is Start on a given loopback port (0: a free one); tests of
// Redis outages use it to bring a stopped server back where clients expect
// it.
func StartPort(ctx context.Context, port int) (*Server, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, ErrNotInstalled
	}
	if port == 0 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		port = l.Addr().(*net.TCPAddr).Port
		l.Close()
	}
	dir, err := os.MkdirTemp("", "auditdb-redis-")
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "",
		"--appendonly", "no", "--dir", dir, "--daemonize", "no", "--loglevel", "warning")
	if err := cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("embeddedredis: start redis-server: %w", err)
	}
	s := &Server{URL: fmt.Sprintf("redis://127.0.0.1:%d/0", port), cmd: cmd, dir: dir}
	opt, _ := goredis.ParseURL(s.URL)
	client := goredis.NewClient(opt)
	defer client.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := client.Ping(ctx).Err()
		if err == nil {
			return s, nil
		}
		if time.Now().After(deadline) {
			s.Stop()
			return nil, fmt.Errorf("embeddedredis: redis-server did not answer: %w", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// CleanupOnExit starts a watchdog process that outlives this one: when
// this process ends without having called Stop, however it ends (SIGPIPE,
// SIGKILL, a panic in any goroutine), the watchdog kills the server and
// removes its folder. Call release after Stop.
func (s *Server) CleanupOnExit() (release func(), err error) {
	return watchdog.Start(`if grep -q redis-server "/proc/$1/cmdline" 2>/dev/null; then kill -9 "$1"; fi; rm -rf "$2"`,
		[]string{strconv.Itoa(s.cmd.Process.Pid), s.dir}, nil)
}

// Stop kills the server and removes its folder.
func (s *Server) Stop() {
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
	os.RemoveAll(s.dir)
}
