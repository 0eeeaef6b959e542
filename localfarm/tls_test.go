package localfarm_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/latentfarm/latentfarm/client"
	"github.com/latentfarm/latentfarm/localfarm"
	"github.com/latentfarm/latentfarm/shared/connect"
	"github.com/latentfarm/latentfarm/shared/farmtest"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// strangerCA is the PEM of a CA that signed nothing of the farm's.
func strangerCA(t *testing.T) string {
	t.Helper()
	c, err := localfarm.EnsureCerts(t.TempDir(), []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	pem, err := os.ReadFile(c.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem)
}

// TestFarm_TLS_RefusesPlainTextAndStrangers runs a farm with TLS on and
// checks every server it exposes: NATS, etcd (client and peer URLs), S3 and
// the API refuse plain text and a client that trusts another CA, and serve
// a client that trusts the farm's CA.
func TestFarm_TLS_RefusesPlainTextAndStrangers(t *testing.T) {
	dir := t.TempDir()
	peerPort := farmtest.FreePorts(t, 1)[0]
	f := startWith(t, localfarm.Options{Dir: dir, TLS: localfarm.TLSOn, EtcdPeerPort: peerPort})
	creds := f.Credentials()
	stranger := connect.TLSFiles{CA: strangerCA(t)}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	for _, name := range []string{"ca-key.pem", "server-key.pem"} {
		if st, err := os.Stat(filepath.Join(dir, "tls", name)); err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("tls/%s: %v, mode %v: want 0600", name, err, st.Mode().Perm())
		}
	}
	if !strings.HasPrefix(creds.NATSURL, "tls://") || !strings.HasPrefix(creds.EtcdEndpoints[0], "https://") ||
		!strings.HasPrefix(creds.S3Endpoint, "https://") || !strings.HasPrefix(creds.CoordinatorURL, "https://") || creds.CA == "" {
		t.Fatalf("credentials do not say TLS: %+v", creds)
	}

	t.Run("nats", func(t *testing.T) {
		good := f.NATSConfig()
		if nc, err := connect.NATS(good, "tls-test", nil); err != nil {
			t.Errorf("trusting the farm's CA: %v", err)
		} else {
			nc.Close()
		}
		bad := good
		bad.TLS = stranger
		if nc, err := connect.NATS(bad, "tls-test", nil); !isTLSError(err) {
			if err == nil {
				nc.Close()
			}
			t.Errorf("trusting another CA: %v, want a certificate error", err)
		}
		if got := plainNATS(t, good); strings.Contains(got, "PONG") || strings.Contains(got, "+OK") {
			t.Errorf("plain text login answered: %q", got)
		}
	})

	t.Run("etcd", func(t *testing.T) {
		good := f.EtcdConfig()
		if _, err := etcdClient(t, good).Get(ctx, "x"); err != nil {
			t.Errorf("trusting the farm's CA: %v", err)
		}
		bad := good
		bad.TLS = stranger
		if err := etcdGet(bad); err == nil {
			t.Error("trusting another CA: read a key")
		}
		plain := good
		plain.TLS = connect.TLSFiles{}
		plain.Endpoints = []string{strings.Replace(good.Endpoints[0], "https://", "http://", 1)}
		if err := etcdGet(plain); err == nil {
			t.Error("plain text: read a key")
		}
	})

	t.Run("etcd peer", func(t *testing.T) {
		peer := net.JoinHostPort("127.0.0.1", strconv.Itoa(peerPort))
		if resp, err := http.Get("http://" + peer + "/members"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				t.Error("plain text: peer answered /members")
			}
		}
		// Even a client that trusts the CA needs a peer certificate.
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM([]byte(creds.CA))
		cli := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
		if resp, err := cli.Get("https://" + peer + "/members"); err == nil {
			resp.Body.Close()
			t.Errorf("no client certificate: peer answered %d", resp.StatusCode)
		}
	})

	t.Run("s3", func(t *testing.T) {
		good := f.S3Config()
		cli, err := connect.S3(good)
		if err != nil {
			t.Fatal(err)
		}
		if ok, err := cli.BucketExists(ctx, good.Bucket); err != nil || !ok {
			t.Errorf("trusting the farm's CA: bucket %v, %v", ok, err)
		}
		bad := good
		bad.TLS = stranger
		if cli, err := connect.S3(bad); err != nil {
			t.Fatal(err)
		} else if _, err := cli.BucketExists(ctx, good.Bucket); !isTLSError(err) {
			t.Errorf("trusting another CA: %v, want a certificate error", err)
		}
		// A signed request in plain text: the gateway hangs up on it.
		plain, err := minio.New(strings.TrimPrefix(good.Endpoint, "https://"), &minio.Options{
			Creds: credentials.NewStaticV4(good.AccessKey, good.SecretKey, ""), Region: good.Region, MaxRetries: 1})
		if err != nil {
			t.Fatal(err)
		}
		if ok, err := plain.BucketExists(ctx, good.Bucket); err == nil || ctx.Err() != nil {
			t.Errorf("plain text: bucket %v, %v", ok, err)
		}
	})

	t.Run("api", func(t *testing.T) {
		good, err := client.New(client.Options{URL: creds.CoordinatorURL, Token: creds.Token, TLS: connect.TLSFiles{CA: creds.CA}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := good.Nodes(ctx); err != nil {
			t.Errorf("trusting the farm's CA: %v", err)
		}
		bad, err := client.New(client.Options{URL: creds.CoordinatorURL, Token: creds.Token, TLS: stranger})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := bad.Nodes(ctx); !isTLSError(err) {
			t.Errorf("trusting another CA: %v, want a certificate error", err)
		}
		plain := strings.Replace(creds.CoordinatorURL, "https://", "http://", 1)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, plain+"/v1/nodes", nil)
		req.Header.Set("Authorization", "Bearer "+creds.Token)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				t.Error("plain text: answered 200")
			}
		}
	})
}

// plainNATS logs in to NATS without TLS, speaking the protocol by hand so
// no client library upgrades the connection, and returns what the server
// said before it hung up.
func plainNATS(t *testing.T, c connect.NATSConfig) string {
	t.Helper()
	u, err := url.Parse(c.URL)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.DialTimeout("tcp", u.Host, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	r := bufio.NewReader(conn)
	info, err := r.ReadString('\n')
	if err != nil || !strings.Contains(info, `"tls_required":true`) {
		t.Errorf("INFO does not require TLS: %q %v", info, err)
	}
	_, _ = conn.Write([]byte(`CONNECT {"user":"` + c.User + `","pass":"` + c.Password + `","verbose":false}` + "\r\nPING\r\n"))
	var got strings.Builder
	for {
		line, err := r.ReadString('\n')
		got.WriteString(line)
		if err != nil {
			return got.String()
		}
	}
}

// isTLSError reports whether err says the server's certificate is not
// trusted.
func isTLSError(err error) bool {
	var unknown x509.UnknownAuthorityError
	return errors.As(err, &unknown) || err != nil && strings.Contains(err.Error(), "certificate signed by unknown authority")
}

// etcdGet reads a key with c and a short timeout.
func etcdGet(c connect.EtcdConfig) error {
	cfg := clientv3.Config{Endpoints: c.Endpoints, Username: c.User, Password: c.Password,
		DialTimeout: 2 * time.Second, Logger: zap.NewNop()}
	tc, err := c.TLS.Config()
	if err != nil {
		return err
	}
	cfg.TLS = tc
	cli, err := clientv3.New(cfg)
	if err != nil {
		return err
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_, err = cli.Get(ctx, "x")
	return err
}
