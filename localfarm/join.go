package localfarm

import (
	"fmt"
	"net/url"
	"path/filepath"
	"strings"

	"github.com/latentfarm/latentfarm/shared/wire"
)

// Summary is the text `farm up` prints once the farm is up: endpoints,
// where the credentials and the join token are, and how to use and join the
// farm. It holds no secret: a command line with one would show it to every
// user of the machine (ps) and land in shell histories.
func Summary(dir string, c wire.Credentials) string {
	var b strings.Builder
	fmt.Fprintf(&b, "latentfarm is up (data in %s)\n\n", dir)
	fmt.Fprintf(&b, "  coordinator API  %s   (bearer token in credentials file)\n", c.CoordinatorURL)
	fmt.Fprintf(&b, "  NATS             %s   admin user %s\n", c.NATSURL, c.NATSUser)
	fmt.Fprintf(&b, "  etcd             %s   admin user %s\n", strings.Join(c.EtcdEndpoints, ","), c.EtcdUser)
	fmt.Fprintf(&b, "  S3               %s   bucket %s\n", c.S3Endpoint, c.S3Bucket)
	if c.CA != "" {
		fmt.Fprintf(&b, "  TLS              every server; CA %s\n", filepath.Join(dir, "tls", "ca.pem"))
	} else {
		fmt.Fprintf(&b, "  TLS              off\n")
	}
	fmt.Fprintf(&b, "  credentials      %s (mode 0600: the admin's secrets)\n", filepath.Join(dir, wire.CredentialsFile))
	fmt.Fprintf(&b, "  join token       %s (mode 0600)\n\n", filepath.Join(dir, JoinTokenFile))
	fmt.Fprintf(&b, "The CLI on this machine finds the farm by itself: farm submit job.yaml\n")
	if u, err := url.Parse(c.NATSURL); err == nil && isLoopback(u.Hostname()) {
		fmt.Fprintf(&b, "This farm listens on loopback only: start it with --listen 0.0.0.0 for nodes on other machines.\n")
	}
	fmt.Fprintf(&b, "To join a node on another machine, copy the join token file there over a safe channel\n"+
		"and run:\n\n  farm node --join-token-file %s\n\n", JoinTokenFile)
	fmt.Fprintf(&b, "farm token create --name NAME [--ttl 24h] issues a token of its own per machine or pool;\n"+
		"farm token revoke NAME cuts its nodes off.\n")
	return b.String()
}
