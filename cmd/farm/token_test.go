package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/latentfarm/latentfarm/node"
	"github.com/latentfarm/latentfarm/shared/wire"
)

const testCA = "-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n"

func joinToken(expires time.Time) wire.JoinToken {
	t := wire.JoinToken{Name: "gpu", CA: testCA, NATSURL: "tls://token:4222", NATSUser: "node-gpu", NATSPassword: "np",
		EtcdEndpoints: []string{"https://token:2379"}, EtcdUser: "node-gpu", EtcdPassword: "ep",
		S3Endpoint: "https://token:7070", S3AccessKey: "AK", S3SecretKey: "SK", S3Bucket: "farm"}
	if !expires.IsZero() {
		t.Expires = expires.Unix()
	}
	return t
}

// nodeWithToken parses farm node's flags with the token in a file (or, for
// an empty file name, in $FARM_JOIN_TOKEN) and admin credentials in the
// data dir, and returns the options.
func nodeWithToken(t *testing.T, tok wire.JoinToken, inFile bool, flags ...string) (node.Options, error) {
	t.Helper()
	t.Setenv("FARM_JOIN_TOKEN", "")
	t.Setenv("FARM_JOIN_TOKEN_FILE", "")
	args := setLayers(t, layers{flags: flags, creds: &wire.Credentials{NATSURL: "nats://creds:1", NATSUser: "farm",
		NATSPassword: "admin", EtcdEndpoints: []string{"http://creds:2"}, EtcdUser: "root", EtcdPassword: "root",
		S3Endpoint: "http://creds:3", S3AccessKey: "ROOT", S3SecretKey: "ROOTSECRET", S3Bucket: "farm"}})
	if inFile {
		path := filepath.Join(t.TempDir(), "join-token")
		if err := wire.WriteJoinToken(path, tok); err != nil {
			t.Fatal(err)
		}
		args = append(args, "--join-token-file", path)
	} else {
		t.Setenv("FARM_JOIN_TOKEN", tok.Encode())
	}
	c, f := newNodeCmdFlags()
	if err := c.ParseFlags(args); err != nil {
		return node.Options{}, err
	}
	return f.options()
}

// TestNode_JoinToken_StandsInForTheCredentials: with a join token (file or
// environment) the node logs in as the token's users, through the token's
// CA, never with the admin credentials of the data dir; a flag still wins.
func TestNode_JoinToken_StandsInForTheCredentials(t *testing.T) {
	tok := joinToken(time.Now().Add(time.Hour))
	for _, inFile := range []bool{true, false} {
		o, err := nodeWithToken(t, tok, inFile)
		if err != nil {
			t.Fatal(err)
		}
		if o.NATS.URL != tok.NATSURL || o.NATS.User != "node-gpu" || o.NATS.Password != "np" ||
			o.NATS.InboxPrefix != wire.InboxPrefix("node-gpu") || o.NATS.TLS.CA != testCA {
			t.Errorf("nats %+v: want the token's", o.NATS)
		}
		if o.Etcd.Endpoints[0] != tok.EtcdEndpoints[0] || o.Etcd.User != "node-gpu" || o.Etcd.TLS.CA != testCA {
			t.Errorf("etcd %+v: want the token's", o.Etcd)
		}
		if o.S3.AccessKey != "AK" || o.S3.SecretKey != "SK" || o.S3.TLS.CA != testCA {
			t.Errorf("s3 %+v: want the token's", o.S3)
		}
		if !tok.AllowsNodeID(o.ID) || !strings.HasPrefix(o.ID, "gpu-") {
			t.Errorf("id %q: want gpu-...", o.ID)
		}
	}
	o, err := nodeWithToken(t, tok, true, "--nats-url", "tls://other:4222", "--id", "gpu-7")
	if err != nil || o.NATS.URL != "tls://other:4222" || o.NATS.User != "node-gpu" || o.ID != "gpu-7" {
		t.Errorf("flags over the token: %+v, %v", o, err)
	}
}

// TestNode_JoinToken_Refusals: an id the token does not allow, an expired
// token and a damaged one are usage errors that say what is wrong.
func TestNode_JoinToken_Refusals(t *testing.T) {
	if _, err := nodeWithToken(t, joinToken(time.Time{}), true, "--id", "cpu-1"); !isUsage(err) ||
		!strings.Contains(err.Error(), "registers only the ids gpu and gpu-*") {
		t.Errorf("--id cpu-1: %v", err)
	}
	if _, err := nodeWithToken(t, joinToken(time.Now().Add(-time.Minute)), false); !isUsage(err) ||
		!strings.Contains(err.Error(), "expired") {
		t.Errorf("expired: %v", err)
	}
	path := filepath.Join(t.TempDir(), "join-token")
	if err := os.WriteFile(path, []byte(joinToken(time.Time{}).Encode()[:40]), 0o600); err != nil {
		t.Fatal(err)
	}
	setLayers(t, layers{})
	if err := execute(context.Background(), "node", "--join-token-file", path); !isUsage(err) ||
		!strings.Contains(err.Error(), path) {
		t.Errorf("damaged token file: %v", err)
	}
}
