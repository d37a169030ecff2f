// Package embeddedpg runs a private PostgreSQL server from the machine's own
// binaries (initdb + pg_ctl) in a temporary folder on a free loopback port:
// the embedded default behind `auditworker dev`, `make demo`, the benchmarks
// and the test harness. No Docker, no configuration.
//
// PostgreSQL refuses to run as root. When the process is root, the data
// folder is handed to the `postgres` user and the server runs as that user.
package embeddedpg

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/auditdb/auditdb/internal/watchdog"
)

// Config for Start. The zero value gives a server tuned for tests.
type Config struct {
	// BinDir holds initdb, pg_ctl and postgres. Defaults to $AUDIT_PG_BIN,
	// then `pg_config --bindir`, then the newest /usr/lib/postgresql/*/bin.
	BinDir string
	// Durable keeps fsync and synchronous_commit on (benchmarks, the demo).
	// Defaults to false: tests run faster without them.
	Durable bool
	// Settings are extra postgresql.conf settings (-c name=value).
	Settings map[string]string
	// Port to listen on. Defaults to a free loopback port.
	Port int
}

// Server is a running private PostgreSQL.
type Server struct {
	Port    int
	dir     string
	binDir  string
	cred    *syscall.Credential
	logPath string
}

// URL returns a connection URL for database db as the superuser.
func (s *Server) URL(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", s.Port, db)
}

// DataDir is the server's data folder.
func (s *Server) DataDir() string { return filepath.Join(s.dir, "data") }

// FindBinDir locates the PostgreSQL server binaries.
func FindBinDir() (string, error) {
	if d := os.Getenv("AUDIT_PG_BIN"); d != "" {
		return d, nil
	}
	candidates := []string{}
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		candidates = append(candidates, strings.TrimSpace(string(out)))
	}
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(matches, func(i, j int) bool { return versionOf(matches[i]) > versionOf(matches[j]) })
	candidates = append(candidates, matches...)
	for _, d := range candidates {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	return "", errors.New("embeddedpg: no PostgreSQL server binaries found (initdb, pg_ctl): install postgresql-15 or set AUDIT_PG_BIN")
}

func versionOf(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

// Start initialises and starts a server. Stop it with Stop.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	binDir := cfg.BinDir
	if binDir == "" {
		var err error
		if binDir, err = FindBinDir(); err != nil {
			return nil, err
		}
	}
	s, err := newServer(binDir)
	if err != nil {
		return nil, err
	}
	if err := s.run(ctx, "initdb", "-D", s.DataDir(), "-U", "postgres", "-A", "trust",
		"-E", "UTF8", "--locale=C", "--no-sync"); err != nil {
		os.RemoveAll(s.dir)
		return nil, err
	}

	if err := s.start(ctx, cfg); err != nil {
		os.RemoveAll(s.dir)
		return nil, err
	}
	return s, nil
}

// start runs the server on s.DataDir() with cfg's port and settings.
func (s *Server) start(ctx context.Context, cfg Config) error {
	s.Port = cfg.Port
	if s.Port == 0 {
		var err error
		if s.Port, err = freePort(); err != nil {
			return err
		}
	}
	settings := map[string]string{
		"listen_addresses":        "127.0.0.1",
		"port":                    strconv.Itoa(s.Port),
		"unix_socket_directories": s.dir,
		"max_connections":         "200",
		"shared_buffers":          "256MB",
		"log_min_messages":        "warning",
	}
	if !cfg.Durable {
		settings["fsync"] = "off"
		settings["synchronous_commit"] = "off"
		settings["full_page_writes"] = "off"
	}
	for k, v := range cfg.Settings {
		settings[k] = v
	}
	keys := make([]string, 0, len(settings))
	for k := range settings {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var opts []string
	for _, k := range keys {
		opts = append(opts, fmt.Sprintf("-c %s=%s", k, settings[k]))
	}
	if err := s.run(ctx, "pg_ctl", "start", "-w", "-t", "60", "-D", s.DataDir(), "-l", s.logPath,
		"-o", strings.Join(opts, " ")); err != nil {
		log, _ := os.ReadFile(s.logPath)
		return fmt.Errorf("%w\nserver log:\n%s", err, log)
	}
	return nil
}

// newServer makes the temporary folder of a server, owned by the user the
// server will run as.
func newServer(binDir string) (*Server, error) {
	dir, err := os.MkdirTemp("", "auditdb-pg-")
	if err != nil {
		return nil, err
	}
	s := &Server{dir: dir, binDir: binDir, logPath: filepath.Join(dir, "server.log")}
	if s.cred, err = serverCredential(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if s.cred != nil {
		if err := os.Chown(dir, int(s.cred.Uid), int(s.cred.Gid)); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return s, nil
}

// serverCredential is the user the server runs as: nil (ourselves), or the
// postgres user when we are root, which PostgreSQL refuses to run as.
func serverCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, errors.New("embeddedpg: running as root and there is no 'postgres' user to run the server as")
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// CleanupOnExit starts a watchdog process that outlives this one: when
// this process ends without having called Stop, however it ends (SIGPIPE,
// SIGKILL, a panic in any goroutine), the watchdog stops the server
// (pg_ctl's immediate mode) and removes its folder. Call release after Stop.
func (s *Server) CleanupOnExit() (release func(), err error) {
	return watchdog.Start(`if [ -f "$2/data/postmaster.pid" ]; then "$1/pg_ctl" stop -w -m immediate -D "$2/data" >/dev/null 2>&1; fi; rm -rf "$2"`,
		[]string{s.binDir, s.dir}, s.cred)
}

// Stop shuts the server down and removes its folder.
func (s *Server) Stop() error {
	err := s.run(context.Background(), "pg_ctl", "stop", "-w", "-m", "fast", "-D", s.DataDir())
	if rmErr := os.RemoveAll(s.dir); err == nil {
		err = rmErr
	}
	return err
}

// Restart stops the server and starts it again on the same data folder and
// port, with the same settings. mode is pg_ctl's shutdown mode: "fast", or
// "immediate" (a crash: the start replays the WAL). For tests of clients
// that must survive a restart.
func (s *Server) Restart(ctx context.Context, mode string) error {
	return s.run(ctx, "pg_ctl", "restart", "-w", "-t", "60", "-m", mode, "-D", s.DataDir(), "-l", s.logPath)
}

// Bin returns the path of one of the server's programs (pgbench, psql...).
func (s *Server) Bin(name string) string { return filepath.Join(s.binDir, name) }

func (s *Server) run(ctx context.Context, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, filepath.Join(s.binDir, name), args...)
	cmd.Dir = s.dir
	if s.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
	}
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	// pg_ctl start leaves the server running with our stdout otherwise.
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("embeddedpg: %s %s: %w: %s", name, args[0], err, strings.TrimSpace(out.String()))
	}
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
