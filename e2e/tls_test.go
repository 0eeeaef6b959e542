package e2e

import (
	"context"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/latentfarm/latentfarm/client"
	"github.com/latentfarm/latentfarm/embedded"
	"github.com/latentfarm/latentfarm/localfarm"
	"github.com/latentfarm/latentfarm/shared/connect"
	"github.com/latentfarm/latentfarm/shared/farmtest"
	"github.com/latentfarm/latentfarm/shared/wire"
)

// tlsServers are NATS, etcd and the S3 gateway serving TLS only, with a CA
// made for the test.
type tlsServers struct {
	certs localfarm.Certs
	nats  *embedded.NATS
	etcd  *embedded.Etcd
	s3    *embedded.S3
}

func startTLSServers(t *testing.T) *tlsServers {
	t.Helper()
	certs, err := localfarm.EnsureCerts(t.TempDir(), []string{"localhost", "127.0.0.1", "::1"})
	if err != nil {
		t.Fatal(err)
	}
	st := &embedded.ServerTLS{CertFile: certs.CertFile, KeyFile: certs.KeyFile, CAFile: certs.CAFile}
	s := &tlsServers{certs: certs}
	if s.nats, err = embedded.StartNATS(embedded.NATSOptions{StoreDir: t.TempDir(), User: "admin",
		Password: farmtest.RandomSecret(t), TLS: st}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.nats.Shutdown)
	if s.etcd, err = embedded.StartEtcd(embedded.EtcdOptions{Dir: t.TempDir(), RootPassword: farmtest.RandomSecret(t), TLS: st}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.etcd.Close)
	if s.s3, err = embedded.StartS3(embedded.S3Options{Dir: t.TempDir(), AccessKey: "e2e-tls",
		SecretKey: farmtest.RandomSecret(t), TLS: st}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.s3.Close)
	return s
}

// TestTLS_SeparateCoordinatorAndNodeFinishAJob runs `farm coordinator` and
// `farm node` as their own processes against NATS, etcd and S3 that serve
// TLS only, each told the CA with its --*-ca flag (secrets come from the
// environment), and a job submitted to the coordinator's HTTPS API
// finishes; `farm jobs --ca` lists it.
func TestTLS_SeparateCoordinatorAndNodeFinishAJob(t *testing.T) {
	bin := buildFarm(t)
	s := startTLSServers(t)
	ca := s.certs.CAFile
	token := farmtest.RandomSecret(t)
	apiPort := farmtest.FreePorts(t, 1)[0]
	apiURL := "https://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(apiPort))
	env := []string{"FARM_DATA=" + t.TempDir(), // no farm up credentials
		"FARM_NATS_PASSWORD=" + s.nats.Password(), "FARM_ETCD_PASSWORD=" + s.etcd.Password(),
		"FARM_S3_SECRET_KEY=" + s.s3.SecretKey(), "FARM_TOKEN=" + token}
	conn := []string{
		"--nats-url", s.nats.URL(), "--nats-user", s.nats.User(), "--nats-ca", ca,
		"--etcd", s.etcd.Endpoints()[0], "--etcd-user", s.etcd.User(), "--etcd-ca", ca,
		"--s3-endpoint", s.s3.Endpoint(), "--s3-access-key", s.s3.AccessKey(), "--s3-bucket", "farm", "--s3-ca", ca,
	}
	if !strings.HasPrefix(s.nats.URL(), "tls://") || !strings.HasPrefix(s.etcd.Endpoints()[0], "https://") ||
		!strings.HasPrefix(s.s3.Endpoint(), "https://") {
		t.Fatalf("servers do not say TLS: %s %s %s", s.nats.URL(), s.etcd.Endpoints()[0], s.s3.Endpoint())
	}
	runFarm(t, bin, env, append([]string{"coordinator", "--listen", "127.0.0.1:" + strconv.Itoa(apiPort),
		"--advertise", apiURL, "--tls-cert", s.certs.CertFile, "--tls-key", s.certs.KeyFile, "--ack-wait", "5s"}, conn...)...)
	runFarm(t, bin, env, append([]string{"node", "--id", "tls-node", "--renderer", "loadtest",
		"--cache", t.TempDir(), "--ffmpeg", "none", "--poll-interval", "200ms"}, conn...)...)

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	c, err := client.New(client.Options{URL: apiURL, Token: token, TLS: connect.TLSFiles{CAFile: ca}})
	if err != nil {
		t.Fatal(err)
	}
	farmtest.Eventually(t, 45*time.Second, func() bool {
		nodes, err := c.Nodes(ctx)
		return err == nil && len(nodes) == 1
	})
	// The coordinator answers before it leads; it takes jobs once it does.
	var st wire.JobStatus
	farmtest.Eventually(t, 30*time.Second, func() bool {
		st, err = c.Submit(ctx, wire.JobSpec{Model: "tiny", Prompts: []string{"a lighthouse"},
			Seeds: wire.SeedRange(1, 4), Width: 64, Height: 64, Steps: 2, FramesPerTask: 2})
		return err == nil
	})
	farmtest.Eventually(t, 45*time.Second, func() bool {
		j, err := c.Job(ctx, st.ID, "")
		return err == nil && wire.JobFinished(j.State)
	})
	if j, err := c.Job(ctx, st.ID, ""); err != nil || j.State != wire.JobDone || j.FramesDone != 4 {
		t.Fatalf("job: %+v, %v", j, err)
	}
	out, err := farmOutput(t, bin, env, "jobs", "--url", apiURL, "--ca", ca, "-o", "json")
	if err != nil || !strings.Contains(out, st.ID) {
		t.Fatalf("farm jobs --ca: %v\n%s", err, out)
	}
	// Without the CA the CLI refuses the coordinator's certificate.
	if out, err := farmOutput(t, bin, env, "jobs", "--url", apiURL); err == nil || !strings.Contains(out, "certificate") {
		t.Fatalf("farm jobs without --ca: %v\n%s", err, out)
	}
}
