package harness

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
)

// Redis is a Redis server for tests.
type Redis struct {
	URL  string
	stop func()
}

// SharedRedis returns the Redis that Main started (Options.Redis).
func SharedRedis() *Redis { return redis }

// StartRedis provides a Redis: AUDIT_TEST_REDIS_URL, a Docker daemon, or a
// local redis-server on a free loopback port with persistence off.
func StartRedis(ctx context.Context) (*Redis, error) {
	if u := os.Getenv("AUDIT_TEST_REDIS_URL"); u != "" {
		return &Redis{URL: u, stop: func() {}}, nil
	}
	if u, stop, ok := dockerRedis(ctx); ok {
		return &Redis{URL: u, stop: stop}, nil
	}
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, errors.New("no Redis: set AUDIT_TEST_REDIS_URL or install redis-server (apt-get install -y redis-server)")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	dir, err := os.MkdirTemp("", "auditdb-redis-")
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "",
		"--appendonly", "no", "--dir", dir, "--daemonize", "no", "--loglevel", "warning")
	if err := cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("start redis-server: %w", err)
	}
	r := &Redis{URL: fmt.Sprintf("redis://127.0.0.1:%d/0", port), stop: func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		os.RemoveAll(dir)
	}}
	opt, _ := goredis.ParseURL(r.URL)
	client := goredis.NewClient(opt)
	defer client.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if err := client.Ping(ctx).Err(); err == nil {
			return r, nil
		} else if time.Now().After(deadline) {
			r.stop()
			return nil, fmt.Errorf("redis-server did not answer: %w", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop stops what StartRedis started.
func (r *Redis) Stop() { r.stop() }
