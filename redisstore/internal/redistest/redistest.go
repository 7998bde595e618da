// Package redistest starts throwaway Redis servers and clusters for tests:
// redis-server child processes on free loopback ports, with no
// persistence unless asked, stopped by the caller (and killed with the
// test process on Linux).
package redistest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Available reports why real-Redis tests cannot run here, or nil.
func Available() error {
	for _, bin := range []string{"redis-server", "redis-cli"} {
		if _, err := exec.LookPath(bin); err != nil {
			return fmt.Errorf("%s not found in PATH (install Redis, e.g. apt-get install redis-server): %w", bin, err)
		}
	}
	return nil
}

// Require skips tb when Redis is not installed, or fails it when the
// environment variable CI is "true": CI must run these tests.
func Require(tb testing.TB) {
	tb.Helper()
	if err := Available(); err != nil {
		if os.Getenv("CI") == "true" {
			tb.Fatalf("real-Redis tests cannot run in CI: %v", err)
		}
		tb.Skipf("skipping real-Redis test: %v", err)
	}
}

// Server is one redis-server child process.
type Server struct {
	Addr string
	Port int
	Dir  string
	args []string
	cmd  *exec.Cmd
	out  *strings.Builder
	// exited is closed when the process has exited.
	exited chan struct{}
}

// StartServer starts redis-server on a free loopback port with its data in
// dir, persistence off, and the extra arguments given (such as
// "--appendonly", "yes"); it returns once the server answers PING.
func StartServer(dir string, extra ...string) (*Server, error) {
	var lastErr error
	for range 5 {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		s := &Server{Addr: "127.0.0.1:" + strconv.Itoa(port), Port: port, Dir: dir}
		s.args = append([]string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1",
			"--save", "", "--appendonly", "no", "--daemonize", "no", "--dir", dir,
			"--logfile", "", "--protected-mode", "no"}, extra...)
		if lastErr = s.Start(); lastErr == nil {
			return s, nil
		}
	}
	return nil, lastErr
}

// Start starts the server again on its port after Stop.
func (s *Server) Start() error {
	s.out = &strings.Builder{}
	s.cmd = exec.Command("redis-server", s.args...)
	s.cmd.Dir = s.Dir
	s.cmd.Stdout = s.out
	s.cmd.Stderr = s.out
	setDeathSignal(s.cmd)
	if err := s.cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	go func() {
		s.cmd.Wait()
		close(exited)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return fmt.Errorf("redis-server on %s exited: %s", s.Addr, s.out.String())
		default:
		}
		if ping(s.Addr) == nil {
			s.exited = exited
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	s.cmd.Process.Kill()
	<-exited
	return fmt.Errorf("redis-server on %s did not answer PING within 10s: %s", s.Addr, s.out.String())
}

// Stop shuts the server down (SIGTERM, then SIGKILL after 5s) and waits
// for it to exit. A server with appendonly on saves on the way out.
func (s *Server) Stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	s.cmd.Process.Signal(syscall.SIGCONT)
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(5 * time.Second):
		s.cmd.Process.Kill()
		<-s.exited
	}
	s.cmd = nil
}

// Kill kills the process (SIGKILL), as a crash or an OOM kill would, and
// waits for it to exit. Start starts it again on its port, with its files.
func (s *Server) Kill() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	s.cmd.Process.Kill()
	<-s.exited
	s.cmd = nil
}

// Pause stops the process (SIGSTOP) without closing its connections:
// a hung server. Resume continues it.
func (s *Server) Pause() error  { return s.cmd.Process.Signal(syscall.SIGSTOP) }
func (s *Server) Resume() error { return s.cmd.Process.Signal(syscall.SIGCONT) }

// Client returns a client of the server that honours context deadlines.
func (s *Server) Client() *redis.Client {
	return redis.NewClient(&redis.Options{Addr: s.Addr, ContextTimeoutEnabled: true})
}

// ping sends PING over a fresh connection.
func ping(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "+PONG") {
		return errors.New(strings.TrimSpace(line))
	}
	return nil
}

// freePort returns a loopback port that is free, and so is the port 10000
// above it, which a cluster node uses for its bus.
func freePort() (int, error) {
	for range 100 {
		port := 20000 + rand.IntN(30000)
		if listenable(port) && listenable(port+10000) {
			return port, nil
		}
	}
	return 0, errors.New("no free loopback port pair found")
}

func listenable(port int) bool {
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		return false
	}
	l.Close()
	return true
}

// Cluster is a Redis Cluster of masters without replicas.
type Cluster struct {
	Nodes []*Server
}

// StartCluster starts n cluster-enabled servers with their files under dir
// (each node's nodes.conf in its own folder) and the extra arguments
// given, which override the defaults (a node timeout of 5s), joins them
// with redis-cli --cluster create and waits for cluster_state:ok on every
// node.
func StartCluster(dir string, n int, extra ...string) (*Cluster, error) {
	c := &Cluster{}
	var addrs []string
	for i := range n {
		nodeDir := filepath.Join(dir, "node"+strconv.Itoa(i))
		if err := os.MkdirAll(nodeDir, 0o755); err != nil {
			c.Stop()
			return nil, err
		}
		args := append([]string{"--cluster-enabled", "yes",
			"--cluster-config-file", filepath.Join(nodeDir, "nodes.conf"),
			"--cluster-node-timeout", "5000"}, extra...)
		s, err := StartServer(nodeDir, args...)
		if err != nil {
			c.Stop()
			return nil, err
		}
		c.Nodes = append(c.Nodes, s)
		addrs = append(addrs, s.Addr)
	}
	args := append([]string{"--cluster", "create"}, addrs...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.Command("redis-cli", args...).CombinedOutput(); err != nil {
		c.Stop()
		return nil, fmt.Errorf("redis-cli --cluster create: %v: %s", err, out)
	}
	if err := c.WaitOK(30 * time.Second); err != nil {
		c.Stop()
		return nil, err
	}
	return c, nil
}

// WaitOK waits until every node reports cluster_state:ok and knows every
// other node.
func (c *Cluster) WaitOK(timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for _, s := range c.Nodes {
		cl := s.Client()
		for {
			info, err := cl.ClusterInfo(ctx).Result()
			if err == nil && strings.Contains(info, "cluster_state:ok") &&
				strings.Contains(info, "cluster_known_nodes:"+strconv.Itoa(len(c.Nodes))) {
				break
			}
			select {
			case <-ctx.Done():
				cl.Close()
				return fmt.Errorf("cluster node %s not ok within %v: %v %s", s.Addr, timeout, err, info)
			case <-time.After(50 * time.Millisecond):
			}
		}
		cl.Close()
	}
	return nil
}

// Addrs returns the nodes' addresses.
func (c *Cluster) Addrs() []string {
	var addrs []string
	for _, s := range c.Nodes {
		addrs = append(addrs, s.Addr)
	}
	return addrs
}

// Client returns a cluster client that honours context deadlines.
func (c *Cluster) Client() *redis.ClusterClient {
	return redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs(), ContextTimeoutEnabled: true})
}

// Stop stops every node.
func (c *Cluster) Stop() {
	for _, s := range c.Nodes {
		s.Stop()
	}
}
