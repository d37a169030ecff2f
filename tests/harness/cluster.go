package harness

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// RedisCluster is a Redis Cluster for tests.
type RedisCluster struct {
	// Addrs are the nodes' host:port, for redis.ClusterOptions.Addrs.
	Addrs []string
	stop  func()
}

// StartRedisCluster provides a Redis Cluster: AUDIT_TEST_REDIS_CLUSTER_ADDRS
// (comma-separated host:port of a cluster you run) if set, otherwise three
// local redis-server masters (no replicas) on free loopback ports, joined
// with redis-cli --cluster create, persistence off, in a temporary folder.
func StartRedisCluster(ctx context.Context) (*RedisCluster, error) {
	if s := os.Getenv("AUDIT_TEST_REDIS_CLUSTER_ADDRS"); s != "" {
		return &RedisCluster{Addrs: strings.Split(s, ","), stop: func() {}}, nil
	}
	server, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, fmt.Errorf("harness: redis cluster: redis-server is not installed: %w", err)
	}
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		return nil, fmt.Errorf("harness: redis cluster: redis-cli is not installed: %w", err)
	}
	dir, err := os.MkdirTemp("", "auditdb-redis-cluster-")
	if err != nil {
		return nil, err
	}
	rc := &RedisCluster{}
	var cmds []*exec.Cmd
	rc.stop = func() {
		for _, cmd := range cmds {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
		os.RemoveAll(dir)
	}
	// Six ports: each node's client port and its cluster bus port (Redis 7
	// takes the bus port as --cluster-port; the default, port+10000, may be
	// taken or past 65535).
	ports, err := freePorts(6)
	if err != nil {
		rc.stop()
		return nil, err
	}
	for i := range 3 {
		port, bus := ports[2*i], ports[2*i+1]
		nodeDir := filepath.Join(dir, strconv.Itoa(port))
		if err := os.Mkdir(nodeDir, 0o700); err != nil {
			rc.stop()
			return nil, err
		}
		cmd := exec.Command(server, "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
			"--cluster-enabled", "yes", "--cluster-port", strconv.Itoa(bus),
			"--cluster-config-file", "nodes.conf", "--dir", nodeDir,
			"--save", "", "--appendonly", "no", "--daemonize", "no", "--loglevel", "warning")
		if err := cmd.Start(); err != nil {
			rc.stop()
			return nil, fmt.Errorf("harness: redis cluster: start redis-server: %w", err)
		}
		cmds = append(cmds, cmd)
		rc.Addrs = append(rc.Addrs, "127.0.0.1:"+strconv.Itoa(port))
	}
	for _, addr := range rc.Addrs {
		if err := waitRedis(ctx, addr, func(c *goredis.Client) error { return c.Ping(ctx).Err() }); err != nil {
			rc.stop()
			return nil, err
		}
	}
	create := exec.CommandContext(ctx, cli, append(append([]string{"--cluster", "create"}, rc.Addrs...),
		"--cluster-replicas", "0", "--cluster-yes")...)
	if out, err := create.CombinedOutput(); err != nil {
		rc.stop()
		return nil, fmt.Errorf("harness: redis cluster: create: %w: %s", err, out)
	}
	for _, addr := range rc.Addrs {
		err := waitRedis(ctx, addr, func(c *goredis.Client) error {
			info, err := c.ClusterInfo(ctx).Result()
			if err != nil {
				return err
			}
			if !strings.Contains(info, "cluster_state:ok") {
				return errors.New("cluster_state is not ok")
			}
			return nil
		})
		if err != nil {
			rc.stop()
			return nil, err
		}
	}
	return rc, nil
}

// Stop stops the nodes and removes their folder.
func (r *RedisCluster) Stop() { r.stop() }

func waitRedis(ctx context.Context, addr string, ready func(*goredis.Client) error) error {
	c := goredis.NewClient(&goredis.Options{Addr: addr, MaxRetries: -1})
	defer c.Close()
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := ready(c)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("harness: redis cluster node %s not ready: %w", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// freePorts returns n distinct free loopback ports, holding all listeners
// until every port is known so none is handed out twice.
func freePorts(n int) ([]int, error) {
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
