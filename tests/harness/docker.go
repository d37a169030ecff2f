package harness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/ory/dockertest/v3"
	"github.com/ory/dockertest/v3/docker"
	goredis "github.com/redis/go-redis/v9"
)

// dockerPool returns a dockertest pool when a Docker daemon answers within a
// couple of seconds. No daemon runs on the project's build machines, so this
// path is used only on developer machines that have one.
func dockerPool() (*dockertest.Pool, bool) {
	if os.Getenv("DOCKER_HOST") == "" {
		if _, err := os.Stat("/var/run/docker.sock"); err != nil {
			return nil, false
		}
	}
	pool, err := dockertest.NewPool("")
	if err != nil {
		return nil, false
	}
	pool.MaxWait = 60 * time.Second
	done := make(chan error, 1)
	go func() { done <- pool.Client.Ping() }()
	select {
	case err := <-done:
		return pool, err == nil
	case <-time.After(2 * time.Second):
		return nil, false
	}
}

// PostgresImage is the image the Docker path of the harness builds from the
// project's own docker/postgres.Dockerfile: PostgreSQL 15 with the auditdb
// extension and the C accelerator installed, which the stock postgres image
// lacks (the C-trigger subtests and the CREATE EXTENSION tests need both).
const PostgresImage = "auditdb-test-postgres"

// dockerPostgres builds PostgresImage from this checkout and starts it, when
// a Docker daemon answers and AUDIT_TEST_DOCKER is not 0. ok is false when
// there is no daemon (the harness then starts the local binaries); an error
// means a daemon answered but the image did not build or start, which is
// reported rather than hidden behind the local binaries.
//
// Not run where this project is built: no Docker engine runs there (README,
// "Tests"). It compiles and stays out of the way without a daemon.
func dockerPostgres(ctx context.Context) (string, func(), bool, error) {
	if os.Getenv("AUDIT_TEST_DOCKER") == "0" {
		return "", nil, false, nil
	}
	pool, ok := dockerPool()
	if !ok {
		return "", nil, false, nil
	}
	root, err := moduleRoot()
	if err != nil {
		return "", nil, false, fmt.Errorf("harness: docker: %w", err)
	}
	hint := "; set AUDIT_TEST_DOCKER=0 to use the local PostgreSQL binaries instead"
	fmt.Fprintf(os.Stderr, "harness: docker: building %s from docker/postgres.Dockerfile (the first build takes minutes)\n", PostgresImage)
	// The build has its own deadline: the harness's start-up one is sized
	// for a local cluster, not for pulling images and compiling.
	buildCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Minute)
	defer cancel()
	err = pool.Client.BuildImage(docker.BuildImageOptions{
		Name:              PostgresImage,
		Dockerfile:        "docker/postgres.Dockerfile",
		ContextDir:        root,
		OutputStream:      &prefixWriter{w: os.Stderr, prefix: "harness: docker build: "},
		RmTmpContainer:    true,
		InactivityTimeout: 10 * time.Minute,
		Context:           buildCtx,
	})
	if err != nil {
		return "", nil, false, fmt.Errorf("harness: docker: build docker/postgres.Dockerfile: %w%s", err, hint)
	}
	res, err := pool.RunWithOptions(&dockertest.RunOptions{Repository: PostgresImage, Tag: "latest",
		Env: []string{"POSTGRES_HOST_AUTH_METHOD=trust"}}, func(hc *docker.HostConfig) {
		hc.AutoRemove = true
	})
	if err != nil {
		return "", nil, false, fmt.Errorf("harness: docker: run %s: %w%s", PostgresImage, err, hint)
	}
	url := fmt.Sprintf("postgres://postgres@%s/postgres?sslmode=disable", res.GetHostPort("5432/tcp"))
	err = pool.Retry(func() error {
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			return err
		}
		defer conn.Close(ctx)
		// the image's init script creates the extension at first start; the
		// server restarts once after it, so wait for the extension
		var ok bool
		if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'auditdb')`).Scan(&ok); err != nil {
			return err
		}
		if !ok {
			return errors.New("extension auditdb not available yet")
		}
		return nil
	})
	if err != nil {
		_ = pool.Purge(res)
		return "", nil, false, fmt.Errorf("harness: docker: %s did not accept connections: %w%s", PostgresImage, err, hint)
	}
	return url, func() { _ = pool.Purge(res) }, true, nil
}

// moduleRoot is the folder of this module's go.mod, the build context of
// the image: the working directory of a test is its package's folder.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && strings.Contains(string(b), "module github.com/auditdb/auditdb\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod of github.com/auditdb/auditdb above the working directory")
		}
		dir = parent
	}
}

// prefixWriter prefixes each line written through it: the build's output,
// shown as progress.
type prefixWriter struct {
	w      io.Writer
	prefix string
	mid    bool
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	for _, line := range bytes.SplitAfter(b, []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		if !p.mid {
			if _, err := io.WriteString(p.w, p.prefix); err != nil {
				return 0, err
			}
		}
		if _, err := p.w.Write(line); err != nil {
			return 0, err
		}
		p.mid = line[len(line)-1] != '\n'
	}
	return len(b), nil
}

func dockerRedis(ctx context.Context) (string, func(), bool) {
	pool, ok := dockerPool()
	if !ok {
		return "", nil, false
	}
	res, err := pool.Run("redis", "7", nil)
	if err != nil {
		return "", nil, false
	}
	url := fmt.Sprintf("redis://%s/0", res.GetHostPort("6379/tcp"))
	err = pool.Retry(func() error {
		opt, _ := goredis.ParseURL(url)
		c := goredis.NewClient(opt)
		defer c.Close()
		return c.Ping(ctx).Err()
	})
	if err != nil {
		_ = pool.Purge(res)
		return "", nil, false
	}
	return url, func() { _ = pool.Purge(res) }, true
}
