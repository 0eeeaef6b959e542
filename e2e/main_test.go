package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/latentfarm/latentfarm/coordinator"
	"github.com/latentfarm/latentfarm/embedded"
	"github.com/latentfarm/latentfarm/node"
	"github.com/latentfarm/latentfarm/shared/connect"
	"github.com/latentfarm/latentfarm/shared/farmtest"
)

// envChildNode makes the test binary run one node agent, configured by the
// JSON childSpec in this variable, as a process a test can signal;
// envChildCoordinator likewise runs a coordinator (childCoordinator).
const (
	envChildNode        = "LATENTFARM_E2E_NODE_CHILD"
	envChildCoordinator = "LATENTFARM_E2E_COORDINATOR_CHILD"
)

func TestMain(m *testing.M) {
	embedded.RunChildIfRequested()
	farmtest.RunClusterMemberIfRequested()
	if spec := os.Getenv(envChildNode); spec != "" {
		os.Exit(runChildNode(spec))
	}
	if spec := os.Getenv(envChildCoordinator); spec != "" {
		os.Exit(runChildCoordinator(spec))
	}
	os.Exit(m.Run())
}

// childSpec is what a child node needs: connection configs, no clients.
type childSpec struct {
	ID        string
	NATS      connect.NATSConfig
	Etcd      connect.EtcdConfig
	S3        connect.S3Config
	Delay     time.Duration
	VRAMBytes int64
	// Renderer is node.RendererLoadTest (default) or node.RendererEngine
	// with models from ModelsDir.
	Renderer  string
	ModelsDir string
}

// runChildNode runs a node (without ffmpeg) until SIGTERM or SIGINT, exactly as
// `farm node` would: the signal cancels Run's context and the node drains.
func runChildNode(spec string) int {
	var c childSpec
	if err := json.Unmarshal([]byte(spec), &c); err != nil {
		fmt.Fprintln(os.Stderr, "e2e child:", err)
		return 2
	}
	if c.Renderer == "" {
		c.Renderer = node.RendererLoadTest
	}
	n, err := node.New(node.Options{ID: c.ID, NATS: c.NATS, Etcd: c.Etcd, S3: c.S3,
		RendererName: c.Renderer, ModelsDir: c.ModelsDir, FFmpeg: node.FFmpegNone,
		LoadTestDelay: c.Delay, VRAMBytes: c.VRAMBytes,
		LeaseTTL: 2 * time.Second, PollInterval: 200 * time.Millisecond,
		Logger: hclog.New(&hclog.LoggerOptions{Name: "child", Level: hclog.Warn, Output: os.Stderr})})
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e child:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := n.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "e2e child:", err)
		return 1
	}
	return 0
}

// childCoordinator is what a child coordinator needs.
type childCoordinator struct {
	NATS     connect.NATSConfig
	Etcd     connect.EtcdConfig
	S3       connect.S3Config
	Token    string
	Listen   string
	StateDir string
}

// runChildCoordinator runs a coordinator until it is killed or signalled.
func runChildCoordinator(spec string) int {
	var c childCoordinator
	if err := json.Unmarshal([]byte(spec), &c); err != nil {
		fmt.Fprintln(os.Stderr, "e2e child:", err)
		return 2
	}
	co, err := coordinator.New(coordinator.Options{NATS: c.NATS, Etcd: c.Etcd, S3: c.S3,
		Streams: connect.StreamOptions{AckWait: ackWait}, Listen: c.Listen, Token: c.Token, StateDir: c.StateDir,
		RetryBase: 50 * time.Millisecond, RetryMax: 500 * time.Millisecond, ElectionTTL: 10 * time.Second,
		Logger: hclog.New(&hclog.LoggerOptions{Name: "child-coordinator", Level: hclog.Warn, Output: os.Stderr})})
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e child:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := co.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "e2e child:", err)
		return 1
	}
	return 0
}
