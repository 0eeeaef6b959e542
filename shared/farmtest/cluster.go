package farmtest

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// EnvClusterMember makes a test binary run one member of a NATS or etcd
// cluster, configured by the JSON in this variable, instead of its tests
// (see RunClusterMemberIfRequested). RunNATSCluster and RunEtcdCluster set it.
const EnvClusterMember = "LATENTFARM_CLUSTER_MEMBER"

// memberReady is the line a member writes on its stdout once it serves.
const memberReady = "farmtest member ready"

// Member kinds.
const (
	kindNATS = "nats"
	kindEtcd = "etcd"
)

// memberSpec is everything a member process needs.
type memberSpec struct {
	Kind string
	Name string
	Dir  string
	// Port serves clients; PeerPort serves the other members (NATS routes,
	// etcd peers); MonitorPort is NATS's HTTP monitoring port.
	Port, PeerPort, MonitorPort int
	// Routes are the other NATS members' route URLs.
	Routes []string
	// InitialCluster is etcd's name=peer-url,... of every member.
	InitialCluster string
	// User and Password log clients in to NATS ($G account); SysPassword
	// logs in user "sys" to the system account (leader step-downs).
	User, Password, SysPassword string
}

// RunClusterMemberIfRequested turns this process into the cluster member
// described by EnvClusterMember and exits; otherwise it returns at once.
// Call it first thing in TestMain (or an init function) of every test
// binary that uses RunNATSCluster or RunEtcdCluster.
func RunClusterMemberIfRequested() {
	spec := os.Getenv(EnvClusterMember)
	if spec == "" {
		return
	}
	os.Exit(runMember(spec))
}

// runMember serves until its parent goes away. A member never outlives
// the test: the parent holds the write end of our stdin, and the kernel
// closes it when the parent exits or is killed, however that happens.
func runMember(spec string) int {
	var m memberSpec
	if err := json.Unmarshal([]byte(spec), &m); err != nil {
		fmt.Fprintln(os.Stderr, "farmtest member:", err)
		return 2
	}
	var stop func()
	var err error
	switch m.Kind {
	case kindNATS:
		stop, err = serveNATSMember(m)
	case kindEtcd:
		stop, err = serveEtcdMember(m)
	default:
		err = fmt.Errorf("unknown kind %q", m.Kind)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "farmtest member %s: %v\n", m.Name, err)
		return 1
	}
	fmt.Fprintln(os.Stdout, memberReady)
	_, _ = io.Copy(io.Discard, os.Stdin)
	stop()
	return 0
}

func serveNATSMember(m memberSpec) (func(), error) {
	routes, err := parseURLs(m.Routes)
	if err != nil {
		return nil, err
	}
	sys := natsserver.NewAccount(natsserver.DEFAULT_SYSTEM_ACCOUNT)
	o := &natsserver.Options{
		ServerName: m.Name,
		Host:       "127.0.0.1",
		Port:       m.Port,
		HTTPHost:   "127.0.0.1",
		HTTPPort:   m.MonitorPort,
		JetStream:  true,
		StoreDir:   m.Dir,
		// The farm's user lands in the global account, which keeps
		// JetStream; "sys" may ask for meta leader step-downs.
		Accounts:      []*natsserver.Account{sys},
		SystemAccount: natsserver.DEFAULT_SYSTEM_ACCOUNT,
		Users: []*natsserver.User{
			{Username: m.User, Password: m.Password},
			{Username: "sys", Password: m.SysPassword, Account: sys},
		},
		Cluster: natsserver.ClusterOpts{Name: "farmtest", Host: "127.0.0.1", Port: m.PeerPort},
		Routes:  routes,
		NoSigs:  true,
		NoLog:   true,
	}
	s, err := natsserver.NewServer(o)
	if err != nil {
		return nil, err
	}
	s.SetLoggerV2(stderrNATSLogger{}, false, false, false)
	go s.Start()
	if !s.ReadyForConnections(20 * time.Second) {
		s.Shutdown()
		return nil, errors.New("nats: not ready for connections after 20s")
	}
	return func() { s.Shutdown(); s.WaitForShutdown() }, nil
}

func serveEtcdMember(m memberSpec) (func(), error) {
	cfg := embed.NewConfig()
	cfg.Name = m.Name
	cfg.Dir = m.Dir
	client := url.URL{Scheme: "http", Host: loopback(m.Port)}
	peer := url.URL{Scheme: "http", Host: loopback(m.PeerPort)}
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{client}, []url.URL{client}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{peer}, []url.URL{peer}
	cfg.InitialCluster = m.InitialCluster
	cfg.InitialClusterToken = "farmtest"
	cfg.ClusterState = embed.ClusterStateFlagNew
	cfg.ListenMetricsUrls = nil
	// Test data dies with the test; a killed process loses nothing the
	// page cache holds anyway.
	cfg.UnsafeNoFsync = true
	cfg.LogLevel = "warn"
	cfg.LogOutputs = []string{"stderr"}
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, err
	}
	// Ready needs a quorum: the parent starts every member before waiting.
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		e.Close()
		return nil, err
	case <-time.After(30 * time.Second):
		e.Close()
		return nil, errors.New("etcd: not ready after 30s")
	}
	return e.Close, nil
}

// Member is one server of a cluster, running in a child process.
type Member struct {
	// Name is the NATS server name or the etcd member name.
	Name string
	// URL is the client URL (nats://... or http://...).
	URL string
	// MonitorURL is NATS's HTTP monitoring base URL ("" for etcd).
	MonitorURL string

	cmd   *exec.Cmd
	stdin io.Closer
	out   *SyncBuffer
	ready chan error
	done  chan struct{}
}

// startMember starts the test binary again as the member of spec. It is
// killed at cleanup, and its output is logged if the test failed.
func startMember(t testing.TB, spec memberSpec) *Member {
	t.Helper()
	data, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), EnvClusterMember+"="+string(data))
	m := &Member{Name: spec.Name, cmd: cmd, out: &SyncBuffer{}, ready: make(chan error, 1), done: make(chan struct{})}
	cmd.Stderr = m.out
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("farmtest: start member %s: %v", spec.Name, err)
	}
	m.stdin = stdin
	go func() {
		line, err := bufio.NewReader(stdout).ReadString('\n')
		if err == nil && strings.TrimSpace(line) != memberReady {
			err = fmt.Errorf("unexpected output %q", line)
		}
		m.ready <- err
		_, _ = io.Copy(io.Discard, stdout)
		_ = cmd.Wait() // after the last read: Wait closes stdout
		close(m.done)
	}()
	t.Cleanup(func() {
		m.kill()
		if t.Failed() && m.out.Len() > 0 {
			t.Logf("farmtest: member %s output:\n%s", m.Name, m.out.String())
		}
	})
	return m
}

// Kill SIGKILLs the member and waits until it is gone.
func (m *Member) Kill(t testing.TB) {
	t.Helper()
	if !m.kill() {
		t.Fatalf("farmtest: member %s did not exit after SIGKILL", m.Name)
	}
}

// Alive reports whether the member's process is still running.
func (m *Member) Alive() bool {
	select {
	case <-m.done:
		return false
	default:
		return true
	}
}

func (m *Member) kill() bool {
	if m.Alive() {
		_ = m.cmd.Process.Kill()
	}
	_ = m.stdin.Close()
	select {
	case <-m.done:
		return true
	case <-time.After(10 * time.Second):
		return false
	}
}

// waitMembers waits until every member serves.
func waitMembers(t testing.TB, ms []*Member, timeout time.Duration) {
	t.Helper()
	deadline := time.After(timeout)
	for _, m := range ms {
		select {
		case err := <-m.ready:
			if err != nil {
				t.Fatalf("farmtest: member %s did not start: %v\n%s", m.Name, err, m.out.String())
			}
		case <-deadline:
			t.Fatalf("farmtest: member %s not ready after %s\n%s", m.Name, timeout, m.out.String())
		}
	}
}

// NATSCluster is a NATS cluster with JetStream started by RunNATSCluster.
type NATSCluster struct {
	Members []*Member
	// User and Password log clients in to the account the farm uses.
	User     string
	Password string

	sysPassword string
}

// RunNATSCluster starts size NATS servers with JetStream as child
// processes, each routed to the others, and waits until JetStream can
// place a stream on all of them. The test binary must call
// RunClusterMemberIfRequested first.
func RunNATSCluster(t testing.TB, size int) *NATSCluster {
	t.Helper()
	c := &NATSCluster{User: "farm", Password: RandomSecret(t), sysPassword: RandomSecret(t)}
	ports := FreePorts(t, 3*size)
	var routes []string
	for i := range size {
		routes = append(routes, "nats://"+loopback(ports[3*i+1]))
	}
	for i := range size {
		spec := memberSpec{Kind: kindNATS, Name: "nats-" + strconv.Itoa(i), Dir: t.TempDir(),
			Port: ports[3*i], PeerPort: ports[3*i+1], MonitorPort: ports[3*i+2],
			User: c.User, Password: c.Password, SysPassword: c.sysPassword}
		for j, r := range routes {
			if j != i {
				spec.Routes = append(spec.Routes, r)
			}
		}
		m := startMember(t, spec)
		m.URL = "nats://" + loopback(spec.Port)
		m.MonitorURL = "http://" + loopback(spec.MonitorPort)
		c.Members = append(c.Members, m)
	}
	waitMembers(t, c.Members, 30*time.Second)
	c.waitJetStream(t, size)
	return c
}

// waitJetStream waits until a stream of size replicas can be created: the
// meta group has a leader and knows every server.
func (c *NATSCluster) waitJetStream(t testing.TB, size int) {
	t.Helper()
	js := c.JetStream(t)
	cfg := jetstream.StreamConfig{Name: "FARMTEST_PROBE", Subjects: []string{"farmtest.probe"},
		Storage: jetstream.MemoryStorage, Replicas: size}
	pollUntil(t, 45*time.Second, 50*time.Millisecond, "jetstream cluster ready", func() (bool, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, err := js.CreateStream(ctx, cfg)
		return err == nil, err
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := js.DeleteStream(ctx, cfg.Name); err != nil {
		t.Fatalf("farmtest: delete probe stream: %v", err)
	}
}

// URL lists every member's client URL, comma-separated, as NATS clients
// (and connect.NATSConfig.URL) take it.
func (c *NATSCluster) URL() string {
	urls := make([]string, len(c.Members))
	for i, m := range c.Members {
		urls[i] = m.URL
	}
	return strings.Join(urls, ",")
}

// Conn connects to the cluster as the farm's user; closed at cleanup. It
// reconnects to a surviving member forever.
func (c *NATSCluster) Conn(t testing.TB) *nats.Conn {
	t.Helper()
	return c.conn(t, c.User, c.Password)
}

func (c *NATSCluster) conn(t testing.TB, user, password string) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(c.URL(), nats.UserInfo(user, password),
		nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		t.Fatalf("farmtest: nats connect: %v", err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// JetStream returns a JetStream context on a new connection.
func (c *NATSCluster) JetStream(t testing.TB) jetstream.JetStream {
	t.Helper()
	js, err := jetstream.New(c.Conn(t))
	if err != nil {
		t.Fatalf("farmtest: jetstream: %v", err)
	}
	return js
}

// ConnectedTo waits until exactly one live member lists a client
// connection whose name starts with prefix, and returns that member.
func (c *NATSCluster) ConnectedTo(t testing.TB, prefix string) *Member {
	t.Helper()
	var found *Member
	pollUntil(t, 10*time.Second, 20*time.Millisecond, "connection "+prefix+"...", func() (bool, error) {
		found = nil
		for _, m := range c.Members {
			if !m.Alive() {
				continue
			}
			var cz natsserver.Connz
			if err := getJSON(m.MonitorURL+"/connz?limit=4096", &cz); err != nil {
				return false, err
			}
			for _, ci := range cz.Conns {
				if strings.HasPrefix(ci.Name, prefix) {
					if found != nil {
						return false, fmt.Errorf("on both %s and %s", found.Name, m.Name)
					}
					found = m
				}
			}
		}
		return found != nil, nil
	})
	return found
}

// MetaLeader is the name of the JetStream meta leader as member m sees it
// ("" when it knows none).
func (m *Member) MetaLeader() (string, error) {
	var jsz natsserver.JSInfo
	if err := getJSON(m.MonitorURL+"/jsz", &jsz); err != nil {
		return "", err
	}
	if jsz.Meta == nil {
		return "", nil
	}
	return jsz.Meta.Leader, nil
}

// MoveLeaders makes member to the leader of JetStream's meta group, of
// each stream named, and of every consumer of those streams, by asking the
// current leaders to step down in its favour. A test that then kills to
// makes every one of those raft groups elect at once.
func (c *NATSCluster) MoveLeaders(t testing.TB, to *Member, streams ...string) {
	t.Helper()
	nc, sys := c.Conn(t), c.conn(t, "sys", c.sysPassword)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(`{"placement":{"preferred":` + strconv.Quote(to.Name) + `}}`)
	type group struct {
		name    string
		conn    *nats.Conn
		subject string // the step-down request's
		leader  func(context.Context) (string, error)
		// seen is the leader last seen, asked when a step-down was last
		// requested and answer its reply.
		seen   string
		asked  time.Time
		answer string
	}
	groups := []*group{{name: "meta", conn: sys, subject: "$JS.API.META.LEADER.STEPDOWN",
		leader: func(context.Context) (string, error) { return to.MetaLeader() }}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, name := range streams {
		s, err := js.Stream(ctx, name)
		if err != nil {
			t.Fatalf("farmtest: stream %s: %v", name, err)
		}
		groups = append(groups, &group{name: "stream " + name, conn: nc,
			subject: "$JS.API.STREAM.LEADER.STEPDOWN." + name,
			leader: func(ctx context.Context) (string, error) {
				info, err := s.Info(ctx)
				if err != nil || info.Cluster == nil {
					return "", err
				}
				return info.Cluster.Leader, nil
			}})
		names := s.ConsumerNames(ctx)
		for cn := range names.Name() {
			groups = append(groups, &group{name: "consumer " + name + "/" + cn, conn: nc,
				subject: "$JS.API.CONSUMER.LEADER.STEPDOWN." + name + "." + cn,
				leader: func(ctx context.Context) (string, error) {
					cons, err := s.Consumer(ctx, cn)
					if err != nil || cons.CachedInfo().Cluster == nil {
						return "", err
					}
					return cons.CachedInfo().Cluster.Leader, nil
				}})
		}
		if err := names.Err(); err != nil {
			t.Fatalf("farmtest: consumers of %s: %v", name, err)
		}
	}
	// Ask every group, then poll, asking again the ones that have not
	// moved after a while (a step-down during an election is lost).
	var left []string
	pollUntil(t, 30*time.Second, 100*time.Millisecond, "leaders on "+to.Name, func() (bool, error) {
		left = left[:0]
		for _, g := range groups {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			leader, err := g.leader(ctx)
			cancel()
			switch {
			case err != nil:
				g.seen = "? (" + err.Error() + ")"
			case leader == to.Name:
				continue
			default:
				g.seen = leader
			}
			if err == nil && leader != "" && time.Since(g.asked) > 2*time.Second {
				g.asked = time.Now()
				g.answer = stepDown(g.conn, g.subject, body)
			}
			left = append(left, fmt.Sprintf("%s led by %s, step-down answered %s", g.name, g.seen, g.answer))
		}
		if len(left) == 0 {
			return true, nil
		}
		return false, fmt.Errorf("%d of %d groups not moved: %s", len(left), len(groups), strings.Join(left, "; "))
	})
}

// stepDown asks for a leader step-down and returns the reply, in short.
func stepDown(nc *nats.Conn, subject string, body []byte) string {
	msg, err := nc.Request(subject, body, 2*time.Second)
	if err != nil {
		return err.Error()
	}
	var r struct {
		Success bool `json:"success"`
		Error   *struct {
			Description string `json:"description"`
		} `json:"error"`
	}
	if err := json.Unmarshal(msg.Data, &r); err != nil {
		return err.Error()
	}
	if r.Error != nil {
		return r.Error.Description
	}
	return "success"
}

// EtcdCluster is an etcd cluster started by RunEtcdCluster.
type EtcdCluster struct {
	Members []*Member
}

// RunEtcdCluster starts size etcd members as child processes, without
// auth, and waits until the cluster serves. The test binary must call
// RunClusterMemberIfRequested first.
func RunEtcdCluster(t testing.TB, size int) *EtcdCluster {
	t.Helper()
	ports := FreePorts(t, 2*size)
	var initial []string
	for i := range size {
		initial = append(initial, "etcd-"+strconv.Itoa(i)+"=http://"+loopback(ports[2*i+1]))
	}
	c := &EtcdCluster{}
	for i := range size {
		spec := memberSpec{Kind: kindEtcd, Name: "etcd-" + strconv.Itoa(i), Dir: t.TempDir(),
			Port: ports[2*i], PeerPort: ports[2*i+1], InitialCluster: strings.Join(initial, ",")}
		m := startMember(t, spec)
		m.URL = "http://" + loopback(spec.Port)
		c.Members = append(c.Members, m)
	}
	waitMembers(t, c.Members, 45*time.Second)
	return c
}

// Endpoints are every member's client URL.
func (c *EtcdCluster) Endpoints() []string {
	eps := make([]string, len(c.Members))
	for i, m := range c.Members {
		eps[i] = m.URL
	}
	return eps
}

// Client connects to every member; closed at cleanup.
func (c *EtcdCluster) Client(t testing.TB) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: c.Endpoints(), DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatalf("farmtest: etcd client: %v", err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// Leader waits until a live member says it leads, and returns it.
func (c *EtcdCluster) Leader(t testing.TB) *Member {
	t.Helper()
	cli := c.Client(t)
	var leader *Member
	pollUntil(t, 10*time.Second, 20*time.Millisecond, "etcd leader", func() (bool, error) {
		for _, m := range c.Members {
			if !m.Alive() {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			st, err := cli.Status(ctx, m.URL)
			cancel()
			if err != nil {
				return false, fmt.Errorf("%s: %w", m.Name, err)
			}
			if st.Leader != 0 && st.Leader == st.Header.MemberId {
				leader = m
				return true, nil
			}
		}
		return false, nil
	})
	return leader
}

// FreePorts returns n distinct free TCP ports on 127.0.0.1. They are free
// when returned; a server should bind them soon.
func FreePorts(t testing.TB, n int) []int {
	t.Helper()
	ports := make([]int, n)
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("farmtest: free port: %v", err)
		}
		defer l.Close() // held until all are picked, so none repeats
		ports[i] = l.Addr().(*net.TCPAddr).Port
	}
	return ports
}

// pollUntil polls cond every interval until it holds, failing the test
// with what and cond's last error if it does not within timeout.
func pollUntil(t testing.TB, timeout, every time.Duration, what string, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, err := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("farmtest: %s: not within %s (last error: %v)", what, timeout, err)
		}
		time.Sleep(every)
	}
}

func getJSON(u string, v any) error {
	hc := http.Client{Timeout: 2 * time.Second}
	resp, err := hc.Get(u)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

func parseURLs(ss []string) ([]*url.URL, error) {
	var out []*url.URL
	for _, s := range ss {
		u, err := url.Parse(s)
		if err != nil {
			return nil, err
		}
		out = append(out, u)
	}
	return out, nil
}

func loopback(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }

// stderrNATSLogger writes a member's warnings and errors to its stderr,
// which the parent shows when the test fails.
type stderrNATSLogger struct{}

func (stderrNATSLogger) Noticef(string, ...any) {}
func (stderrNATSLogger) Debugf(string, ...any)  {}
func (stderrNATSLogger) Tracef(string, ...any)  {}
func (stderrNATSLogger) Warnf(format string, v ...any) {
	fmt.Fprintf(os.Stderr, "[WRN] "+format+"\n", v...)
}
func (stderrNATSLogger) Errorf(format string, v ...any) {
	fmt.Fprintf(os.Stderr, "[ERR] "+format+"\n", v...)
}
func (stderrNATSLogger) Fatalf(format string, v ...any) {
	fmt.Fprintf(os.Stderr, "[FTL] "+format+"\n", v...)
}
