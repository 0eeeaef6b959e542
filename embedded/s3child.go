package embedded

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Environment variables that carry the gateway's configuration to the child.
// The secret travels in the environment, never on the command line, where
// every user of the machine could read it.
const (
	// EnvS3Child marks a process started by StartS3 without a subcommand
	// (a re-executed test binary): RunChildIfRequested looks for it.
	EnvS3Child = "LATENTFARM_S3_CHILD"
	// EnvS3Dir, EnvS3Addr, EnvS3AccessKey and EnvS3SecretKey fill GatewayConfig.
	EnvS3Dir       = "LATENTFARM_S3_DIR"
	EnvS3Addr      = "LATENTFARM_S3_ADDR"
	EnvS3AccessKey = "LATENTFARM_S3_ACCESS_KEY"
	EnvS3SecretKey = "LATENTFARM_S3_SECRET_KEY"
	// EnvS3Accounts names GatewayConfig.AccountsFile.
	EnvS3Accounts = "LATENTFARM_S3_ACCOUNTS"
	// EnvS3TLSCert, EnvS3TLSKey and EnvS3TLSCA name GatewayConfig.TLS's files.
	EnvS3TLSCert = "LATENTFARM_S3_TLS_CERT"
	EnvS3TLSKey  = "LATENTFARM_S3_TLS_KEY"
	EnvS3TLSCA   = "LATENTFARM_S3_TLS_CA"
	// EnvS3ReadyFD names the file descriptor on which the child writes one
	// line once it serves.
	EnvS3ReadyFD = "LATENTFARM_S3_READY_FD"
	// EnvS3CPUProfile, set in the parent's environment (the child inherits
	// it), makes the child write a CPU profile of its whole life to that
	// path: benchmarks use it to see where the gateway's time goes.
	EnvS3CPUProfile = "LATENTFARM_S3_CPUPROFILE"
)

// S3Options configures the S3 gateway child process.
type S3Options struct {
	// Dir holds the gateway's data (see GatewayConfig.Dir). Required.
	Dir string
	// Addr is host:port to listen on; empty or port 0 picks a free loopback port.
	Addr string
	// AccessKey and SecretKey are the credentials the gateway accepts. Required.
	AccessKey string
	SecretKey string
	// Command is the child's argv. Empty means this executable with no
	// arguments and EnvS3Child set, which only works in a program whose
	// TestMain or main calls RunChildIfRequested first. `farm up` passes
	// {os.Executable(), "s3-gateway"}.
	Command []string
	// TLS, when set, serves HTTPS only.
	TLS *ServerTLS
	// AccountsFile lists further access keys (see GatewayConfig).
	AccountsFile string
	// Output receives the child's stdout and stderr; nil discards them.
	Output io.Writer
	// ReadyTimeout bounds the wait for the child to serve (default 30s).
	ReadyTimeout time.Duration
}

// S3 is a running S3 gateway child process.
type S3 struct {
	cmd      *exec.Cmd
	endpoint string
	access   string
	secret   string
	done     chan struct{}
	waitErr  error
	once     sync.Once
}

// StartS3 starts the gateway child and waits until it serves. The child gets
// SIGTERM if this process dies (Linux), so it never outlives the farm.
func StartS3(opts S3Options) (*S3, error) {
	if opts.ReadyTimeout <= 0 {
		opts.ReadyTimeout = 30 * time.Second
	}
	pickPort := opts.Addr == ""
	if opts.Addr == "" {
		opts.Addr = "127.0.0.1:0"
	}
	host, port, err := net.SplitHostPort(opts.Addr)
	if err != nil {
		return nil, fmt.Errorf("%w: listen address %q: %w", ErrS3, opts.Addr, err)
	}
	pickPort = pickPort || port == "0"
	var lastErr error
	// A free port we picked can be taken before the child binds it: retry.
	for attempt := 0; attempt < 3; attempt++ {
		if pickPort {
			p, err := freePort(dialHost(host))
			if err != nil {
				return nil, fmt.Errorf("%w: pick port: %w", ErrS3, err)
			}
			opts.Addr = net.JoinHostPort(host, strconv.Itoa(p))
		}
		s, err := startS3Once(opts)
		if err == nil {
			return s, nil
		}
		lastErr = err
		if !pickPort {
			break
		}
	}
	return nil, lastErr
}

func startS3Once(opts S3Options) (*S3, error) {
	cfg := GatewayConfig{Dir: opts.Dir, Addr: opts.Addr, AccessKey: opts.AccessKey, SecretKey: opts.SecretKey,
		AccountsFile: opts.AccountsFile}
	if opts.TLS != nil {
		cfg.TLS = *opts.TLS
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	argv := opts.Command
	env := os.Environ()
	if len(argv) == 0 {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("%w: find own executable: %w", ErrS3, err)
		}
		argv = []string{exe}
		env = append(env, EnvS3Child+"=1")
	}
	env = append(env,
		EnvS3Dir+"="+cfg.Dir, EnvS3Addr+"="+cfg.Addr,
		EnvS3AccessKey+"="+cfg.AccessKey, EnvS3SecretKey+"="+cfg.SecretKey,
		EnvS3Accounts+"="+cfg.AccountsFile, EnvS3TLSCert+"="+cfg.TLS.CertFile, EnvS3TLSKey+"="+cfg.TLS.KeyFile, EnvS3TLSCA+"="+cfg.TLS.CAFile,
		EnvS3ReadyFD+"=3")
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("%w: ready pipe: %w", ErrS3, err)
	}
	defer pr.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = env
	cmd.ExtraFiles = []*os.File{pw}
	cmd.SysProcAttr = childSysProcAttr()
	out := opts.Output
	if out == nil {
		out = io.Discard
	}
	cmd.Stdout, cmd.Stderr = out, out
	s := &S3{cmd: cmd, endpoint: cfg.TLS.scheme() + "://" + dialAddr(cfg.Addr), access: cfg.AccessKey,
		secret: cfg.SecretKey, done: make(chan struct{})}
	startErr := make(chan error, 1)
	go func() {
		// Pdeathsig fires when the thread that forked the child exits, not
		// the process: keep that thread alive (and ours) until the child ends.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			startErr <- err
			return
		}
		startErr <- nil
		s.waitErr = cmd.Wait()
		close(s.done)
	}()
	err = <-startErr
	pw.Close()
	if err != nil {
		return nil, fmt.Errorf("%w: start %s: %w", ErrS3, argv[0], err)
	}
	readyc := make(chan error, 1)
	go func() {
		_, err := bufio.NewReader(pr).ReadString('\n')
		readyc <- err
	}()
	select {
	case err := <-readyc:
		if err == nil {
			return s, nil
		}
		<-s.done
		return nil, fmt.Errorf("%w: gateway child exited before it was ready: %v", ErrS3, s.waitErr)
	case <-time.After(opts.ReadyTimeout):
		s.Close()
		return nil, fmt.Errorf("%w: gateway child not ready after %s", ErrS3, opts.ReadyTimeout)
	}
}

// Endpoint is the URL of the gateway for clients on this machine: https://
// with TLS, http:// without.
func (s *S3) Endpoint() string { return s.endpoint }

// Host is the endpoint's host:port, as minio.New wants it.
func (s *S3) Host() string { return s.endpoint[strings.Index(s.endpoint, "://")+3:] }

// AccessKey is the access key the gateway accepts.
func (s *S3) AccessKey() string { return s.access }

// SecretKey is the secret key the gateway accepts.
func (s *S3) SecretKey() string { return s.secret }

// Done is closed when the child has exited.
func (s *S3) Done() <-chan struct{} { return s.done }

// Pid is the child's process id.
func (s *S3) Pid() int { return s.cmd.Process.Pid }

// Close stops the child: SIGTERM, then SIGKILL after 5s. Safe to call twice.
func (s *S3) Close() {
	s.once.Do(func() {
		// 1. Ask the gateway to finish in-flight requests and exit.
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.done:
			return
		case <-time.After(5 * time.Second):
		}
		// 2. It did not: kill it.
		_ = s.cmd.Process.Kill()
		<-s.done
	})
}

// GatewayConfigFromEnv reads the configuration StartS3 passes to its child.
func GatewayConfigFromEnv() GatewayConfig {
	return GatewayConfig{
		Dir:          os.Getenv(EnvS3Dir),
		Addr:         os.Getenv(EnvS3Addr),
		AccessKey:    os.Getenv(EnvS3AccessKey),
		SecretKey:    os.Getenv(EnvS3SecretKey),
		AccountsFile: os.Getenv(EnvS3Accounts),
		TLS: ServerTLS{CertFile: os.Getenv(EnvS3TLSCert), KeyFile: os.Getenv(EnvS3TLSKey),
			CAFile: os.Getenv(EnvS3TLSCA)},
	}
}

// ServeGatewayChild runs the gateway as the body of a child process: until
// SIGTERM or SIGINT, reporting readiness on the descriptor named by
// EnvS3ReadyFD when there is one. It returns when the gateway stops.
func ServeGatewayChild(ctx context.Context, cfg GatewayConfig) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	if path := os.Getenv(EnvS3CPUProfile); path != "" {
		fh, err := os.Create(path)
		if err != nil {
			return fmt.Errorf("%w: cpu profile: %w", ErrS3, err)
		}
		defer fh.Close()
		if err := pprof.StartCPUProfile(fh); err != nil {
			return fmt.Errorf("%w: cpu profile: %w", ErrS3, err)
		}
		defer pprof.StopCPUProfile()
	}
	var readyFile *os.File
	if fd, err := strconv.Atoi(os.Getenv(EnvS3ReadyFD)); err == nil && fd > 2 {
		readyFile = os.NewFile(uintptr(fd), "ready")
		defer readyFile.Close()
	}
	return RunGateway(ctx, cfg, func() {
		if readyFile != nil {
			_, _ = readyFile.WriteString("ready\n")
			readyFile.Close()
		}
	})
}

// RunChildIfRequested turns this process into the S3 gateway child when
// StartS3 started it without a subcommand, and then exits; otherwise it
// returns at once. Call it first thing in TestMain of every package whose
// tests use farmtest.RunS3 (or StartS3 without Command):
//
//	func TestMain(m *testing.M) { embedded.RunChildIfRequested(); os.Exit(m.Run()) }
func RunChildIfRequested() {
	if os.Getenv(EnvS3Child) != "1" {
		return
	}
	if err := ServeGatewayChild(context.Background(), GatewayConfigFromEnv()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(0)
}
