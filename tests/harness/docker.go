package harness

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/ory/dockertest/v3"
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

func dockerPostgres(ctx context.Context) (string, func(), bool) {
	pool, ok := dockerPool()
	if !ok {
		return "", nil, false
	}
	res, err := pool.Run("postgres", "15", []string{"POSTGRES_HOST_AUTH_METHOD=trust"})
	if err != nil {
		return "", nil, false
	}
	url := fmt.Sprintf("postgres://postgres@%s/postgres?sslmode=disable", res.GetHostPort("5432/tcp"))
	err = pool.Retry(func() error {
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			return err
		}
		return conn.Close(ctx)
	})
	if err != nil {
		_ = pool.Purge(res)
		return "", nil, false
	}
	return url, func() { _ = pool.Purge(res) }, true
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
