package embedded

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/versity/versitygw/auth"
	"github.com/versity/versitygw/backend/meta"
	"github.com/versity/versitygw/backend/posix"
	"github.com/versity/versitygw/embedgw"
)

// GatewayConfig configures the S3 gateway process (see RunGateway).
type GatewayConfig struct {
	// Dir holds the gateway's data: buckets/ (one folder per bucket, objects
	// as files) with object metadata in extended attributes where the file
	// system has them, else in meta/ (see useXattrs).
	Dir string
	// Addr is host:port to listen on.
	Addr string
	// AccessKey and SecretKey are the root's credentials.
	AccessKey string
	SecretKey string
	// AccountsFile, when set, lists further access keys (WriteS3Accounts),
	// read again whenever it is replaced. They are ordinary users: the
	// bucket's policy says what each may do.
	AccountsFile string
	// Region reported to clients (default us-east-1).
	Region string
	// TLS, when set, serves HTTPS only.
	TLS ServerTLS
}

// HealthPath answers 200 without credentials so a parent can see the gateway
// is up; no bucket name can start with "_", so it masks none.
const HealthPath = "/_farm_health"

// ErrS3 marks errors from the embedded S3 gateway.
var ErrS3 = errors.New("embedded s3")

func (c GatewayConfig) validate() error {
	switch {
	case c.Dir == "":
		return fmt.Errorf("%w: data dir is required", ErrS3)
	case c.Addr == "":
		return fmt.Errorf("%w: listen address is required", ErrS3)
	case c.AccessKey == "" || c.SecretKey == "":
		return fmt.Errorf("%w: access key and secret key are required (nothing listens unauthenticated)", ErrS3)
	case len(c.SecretKey) < 8:
		return fmt.Errorf("%w: secret key is shorter than 8 characters", ErrS3)
	}
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		return fmt.Errorf("%w: listen address %q: %w", ErrS3, c.Addr, err)
	}
	return c.TLS.validate(ErrS3)
}

// RunGateway serves S3 over cfg.Dir in this process until ctx is done, and
// calls ready once the gateway answers. It changes the working directory of
// the whole process (the posix backend calls os.Chdir) and only one may run
// per process, which is why the farm runs it in a child process (StartS3);
// call it only from such a child.
func RunGateway(ctx context.Context, cfg GatewayConfig, ready func()) error {
	if err := cfg.validate(); err != nil {
		return err
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return fmt.Errorf("%w: data dir: %w", ErrS3, err)
	}
	buckets, metaDir := filepath.Join(dir, "buckets"), filepath.Join(dir, "meta")
	for _, d := range []string{buckets, metaDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return fmt.Errorf("%w: %w", ErrS3, err)
		}
	}
	var store meta.MetadataStorer = meta.XattrMeta{}
	// This child is the only process that serves Dir, so the backend's
	// in-process lock orders writers to one key; its lock file (an open and
	// a flock per PUT) guards against other gateways on the same folder.
	popts := posix.PosixOpts{ForceNoObjLockFile: true}
	if !useXattrs(buckets, metaDir) {
		sc, err := meta.NewSideCar(metaDir)
		if err != nil {
			return fmt.Errorf("%w: metadata dir: %w", ErrS3, err)
		}
		store, popts.SideCarDir = sc, metaDir
	}
	be, err := posix.New(buckets, store, popts)
	if err != nil {
		return fmt.Errorf("%w: posix backend: %w", ErrS3, err)
	}
	defer be.Shutdown()
	gw := &embedgw.Config{
		RootUserAccess:    cfg.AccessKey,
		RootUserSecret:    cfg.SecretKey,
		Region:            cfg.Region,
		Ports:             []string{cfg.Addr},
		MaxConnections:    4096,
		MaxRequests:       2048,
		MultipartMaxParts: 10000,
		HealthPath:        HealthPath,
		CertFile:          cfg.TLS.CertFile,
		KeyFile:           cfg.TLS.KeyFile,
		// Quiet alone still logs every request; with an IAMService set it does not.
		Quiet: true,
		// Kept-alive connections spare every request a dial, an accept and
		// their socket setup. connect.S3's clients state the length of the
		// bodies minio-go would send chunked (empty objects over plain HTTP),
		// whose framing the gateway would leave in the connection.
		KeepAlive: true,
	}
	gw.IAMService = &fileIAM{root: auth.Account{Access: cfg.AccessKey, Secret: cfg.SecretKey, Role: auth.RoleAdmin},
		path: cfg.AccountsFile}

	gctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- embedgw.RunVersityGW(gctx, be, gw) }()
	tc, err := cfg.TLS.clientConfig()
	if err != nil {
		return fmt.Errorf("%w: tls: %w", ErrS3, err)
	}
	if err := waitHealthy(gctx, cfg.TLS.scheme()+"://"+dialAddr(cfg.Addr)+HealthPath, tc, errc); err != nil {
		return err
	}
	if ready != nil {
		ready()
	}
	if err := <-errc; err != nil && ctx.Err() == nil {
		return fmt.Errorf("%w: gateway: %w", ErrS3, err)
	}
	return nil
}

// waitHealthy polls url until it answers 200, the gateway fails, or ctx ends.
func waitHealthy(ctx context.Context, url string, tc *tls.Config, errc <-chan error) error {
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{TLSClientConfig: tc}}
	deadline := time.Now().Add(30 * time.Second)
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrS3, err)
		}
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case err := <-errc:
			if err == nil {
				err = errors.New("stopped before it was ready")
			}
			return fmt.Errorf("%w: gateway: %w", ErrS3, err)
		case <-ctx.Done():
			return fmt.Errorf("%w: %w", ErrS3, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w: gateway not healthy at %s after 30s", ErrS3, url)
		}
	}
}

// dialAddr turns a listen address into one a local client can dial.
func dialAddr(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	return net.JoinHostPort(dialHost(host), port)
}
