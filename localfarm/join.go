package localfarm

import (
	"fmt"
	"strings"

	"github.com/latentfarm/latentfarm/shared/wire"
)

// JoinCommand is the `farm node` command line that joins a node on another
// machine to the farm described by c.
func JoinCommand(c wire.Credentials) string {
	args := []string{"farm", "node",
		"--nats-url", c.NATSURL, "--nats-user", c.NATSUser, "--nats-password", c.NATSPassword,
		"--etcd", strings.Join(c.EtcdEndpoints, ","),
	}
	if c.EtcdUser != "" {
		args = append(args, "--etcd-user", c.EtcdUser, "--etcd-password", c.EtcdPassword)
	}
	args = append(args, "--s3-endpoint", c.S3Endpoint, "--s3-access-key", c.S3AccessKey,
		"--s3-secret-key", c.S3SecretKey, "--s3-bucket", c.S3Bucket)
	for i, a := range args {
		args[i] = shellQuote(a)
	}
	return strings.Join(args, " ")
}

// Summary is the text `farm up` prints once the farm is up: endpoints,
// where the credentials are, and how to use and join the farm.
func Summary(dir string, c wire.Credentials) string {
	var b strings.Builder
	fmt.Fprintf(&b, "latentfarm is up (data in %s)\n\n", dir)
	fmt.Fprintf(&b, "  coordinator API  %s   (bearer token in credentials file)\n", c.CoordinatorURL)
	fmt.Fprintf(&b, "  NATS             %s   user %s\n", c.NATSURL, c.NATSUser)
	fmt.Fprintf(&b, "  etcd             %s   user %s\n", strings.Join(c.EtcdEndpoints, ","), c.EtcdUser)
	fmt.Fprintf(&b, "  S3               %s   bucket %s, access key %s\n", c.S3Endpoint, c.S3Bucket, c.S3AccessKey)
	fmt.Fprintf(&b, "  credentials      %s/%s (mode 0600)\n\n", dir, wire.CredentialsFile)
	fmt.Fprintf(&b, "The CLI on this machine finds the farm by itself: farm submit job.yaml\n")
	fmt.Fprintf(&b, "To join a node on another machine (start with --listen 0.0.0.0 so it can reach this one):\n\n  %s\n", JoinCommand(c))
	return b.String()
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:,=@", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
