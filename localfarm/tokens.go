package localfarm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/latentfarm/latentfarm/shared/connect"
	"github.com/latentfarm/latentfarm/shared/wire"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"golang.org/x/crypto/bcrypt"
)

// Names of the tokens farm up issues itself.
const (
	// DefaultTokenName is the token farm up writes to JoinTokenFile for
	// nodes on other machines.
	DefaultTokenName = "node"
	// localTokenName is the token of farm up's own nodes, issued afresh at
	// every start; farm token create refuses it.
	localTokenName = "local"
	// JoinTokenFile is where in the data dir farm up writes the default
	// token (mode 0600).
	JoinTokenFile = "join-token"
)

// Errors of token management.
var (
	ErrTokenExists = errors.New("localfarm: token exists")
	ErrNoToken     = errors.New("localfarm: no such token")
)

// tokenRecord is what the farm keeps of a join token, in etcd under
// wire.TokensPrefix where only root reads: enough to let its logins in (the
// NATS password's bcrypt hash; etcd keeps its own users), never the token.
type tokenRecord struct {
	Name     string    `json:"name"`
	Created  time.Time `json:"created"`
	Expires  time.Time `json:"expires,omitzero"`
	NATSUser string    `json:"nats_user"`
	// NATSPasswordHash is a bcrypt hash (NATS checks logins against it).
	NATSPasswordHash string `json:"nats_password_bcrypt"`
	EtcdUser         string `json:"etcd_user"`
	// S3AccessKey and S3SecretKey are the token's own keys (the gateway
	// needs the secret itself to check signatures).
	S3AccessKey string `json:"s3_access_key"`
	S3SecretKey string `json:"s3_secret_key"`
}

func (r tokenRecord) expired(now time.Time) bool {
	return !r.Expires.IsZero() && !now.Before(r.Expires)
}

// TokenInfo describes an issued join token, without its secrets.
type TokenInfo struct {
	Name    string    `json:"name"`
	Created time.Time `json:"created"`
	// Expires is zero for a token that does not expire.
	Expires time.Time `json:"expires,omitzero"`
}

// issueToken makes a join token named name with new secrets: its record,
// then its etcd login (in that order, so that farm up, which deletes the
// logins of tokens without a record, never deletes a new one). farm up
// loads its NATS login when it sees the record (rev is the record's
// revision). replace lets it take the place of a token of the same name;
// ttl 0 never expires.
func issueToken(ctx context.Context, cli *clientv3.Client, creds wire.Credentials, name string, ttl time.Duration, replace bool, now time.Time) (t wire.JoinToken, rev int64, err error) {
	if !wire.ValidTokenName(name) {
		return t, 0, fmt.Errorf("localfarm: token name %q: want 1 to %d lower-case letters and digits", name, wire.MaxTokenName)
	}
	if ttl < 0 {
		return t, 0, fmt.Errorf("localfarm: token ttl %s is negative", ttl)
	}
	var natsPassword, etcdPassword, s3Access, s3Secret string
	for _, p := range []struct {
		v   *string
		gen func() (string, error)
	}{{&natsPassword, secret(32)}, {&etcdPassword, secret(32)}, {&s3Access, accessKey}, {&s3Secret, secret(40)}} {
		if *p.v, err = p.gen(); err != nil {
			return t, 0, fmt.Errorf("localfarm: token: %w", err)
		}
	}
	// Minimum cost: the password is 190 random bits, and every connect
	// pays for the hash.
	hash, err := bcrypt.GenerateFromPassword([]byte(natsPassword), bcrypt.MinCost)
	if err != nil {
		return t, 0, fmt.Errorf("localfarm: token: %w", err)
	}
	user := tokenUser(name)
	rec := tokenRecord{Name: name, Created: now.UTC(), NATSUser: user, NATSPasswordHash: string(hash), EtcdUser: user,
		S3AccessKey: s3Access, S3SecretKey: s3Secret}
	if ttl > 0 {
		rec.Expires = now.Add(ttl).UTC().Truncate(time.Second)
	}
	data, err := json.Marshal(rec)
	if err != nil {
		return t, 0, fmt.Errorf("localfarm: token: %w", err)
	}
	key := wire.TokenKey(name)
	var absent []clientv3.Cmp
	if !replace {
		absent = append(absent, clientv3.Compare(clientv3.CreateRevision(key), "=", 0))
	}
	resp, err := cli.Txn(ctx).If(absent...).Then(clientv3.OpPut(key, string(data))).Commit()
	if err != nil {
		return t, 0, fmt.Errorf("localfarm: token %s: %w", name, err)
	}
	if !resp.Succeeded {
		return t, 0, fmt.Errorf("%w: %s (revoke it first, or choose another --name)", ErrTokenExists, name)
	}
	if err := ensureEtcdLogin(ctx, cli, user, etcdPassword, nodeEtcdPerms(name)); err != nil {
		return t, 0, err
	}
	t = wire.JoinToken{Name: name, CA: creds.CA,
		NATSURL: creds.NATSURL, NATSUser: user, NATSPassword: natsPassword,
		EtcdEndpoints: creds.EtcdEndpoints, EtcdUser: user, EtcdPassword: etcdPassword,
		S3Endpoint: creds.S3Endpoint, S3AccessKey: s3Access, S3SecretKey: s3Secret,
		S3Bucket: creds.S3Bucket, S3Region: creds.S3Region}
	if !rec.Expires.IsZero() {
		t.Expires = rec.Expires.Unix()
	}
	return t, resp.Header.Revision, nil
}

// revokeToken deletes token name's record and etcd login and ends the
// leases of its nodes' entries, which vanish with them. farm up drops its
// NATS login when it sees the record go. found is false when there was no
// record (what is left of the token is cleaned up anyway); rev is the
// revision of the deletion.
func revokeToken(ctx context.Context, cli *clientv3.Client, name string) (found bool, rev int64, err error) {
	resp, err := cli.Delete(ctx, wire.TokenKey(name))
	if err != nil {
		return false, 0, fmt.Errorf("localfarm: revoke %s: %w", name, err)
	}
	if err := deleteEtcdLogin(ctx, cli, tokenUser(name)); err != nil {
		return false, 0, err
	}
	for _, get := range []clientv3.Op{clientv3.OpGet(wire.NodeKey(name)), clientv3.OpGet(wire.NodeKey(name+"-"), clientv3.WithPrefix())} {
		nodes, err := cli.Do(ctx, get)
		if err != nil {
			return false, 0, fmt.Errorf("localfarm: revoke %s: nodes: %w", name, err)
		}
		for _, kv := range nodes.Get().Kvs {
			if kv.Lease != 0 {
				if _, err := cli.Revoke(ctx, clientv3.LeaseID(kv.Lease)); err != nil && !errors.Is(err, rpctypes.ErrLeaseNotFound) {
					return false, 0, fmt.Errorf("localfarm: revoke %s: lease of %s: %w", name, kv.Key, err)
				}
			}
		}
	}
	return resp.Deleted > 0, resp.Header.Revision, nil
}

// readTokens lists the token records and the revision of the listing.
func readTokens(ctx context.Context, cli *clientv3.Client) ([]tokenRecord, int64, error) {
	resp, err := cli.Get(ctx, wire.TokensPrefix, clientv3.WithPrefix())
	if err != nil {
		return nil, 0, fmt.Errorf("localfarm: tokens: %w", err)
	}
	var out []tokenRecord
	for _, kv := range resp.Kvs {
		var r tokenRecord
		if err := json.Unmarshal(kv.Value, &r); err != nil || !wire.ValidTokenName(r.Name) || wire.TokenKey(r.Name) != string(kv.Key) ||
			r.NATSUser != tokenUser(r.Name) || r.EtcdUser != tokenUser(r.Name) || r.S3AccessKey == "" || r.S3SecretKey == "" {
			return nil, 0, fmt.Errorf("localfarm: token record %s is damaged: %v", kv.Key, err)
		}
		out = append(out, r)
	}
	return out, resp.Header.Revision, nil
}

// CreateToken issues a join token named name, valid for ttl (0: until
// revoked), for the farm whose data dir is dir: `farm token create`. The
// farm must run: its etcd keeps the token, and CreateToken waits until
// its NATS lets the token's login in.
func CreateToken(ctx context.Context, dir, name string, ttl time.Duration) (wire.JoinToken, error) {
	if name == localTokenName {
		return wire.JoinToken{}, fmt.Errorf("localfarm: token name %q is farm up's own", name)
	}
	var t wire.JoinToken
	err := withAdmin(ctx, dir, func(ctx context.Context, creds wire.Credentials, cli *clientv3.Client) error {
		var err error
		var rev int64
		if t, rev, err = issueToken(ctx, cli, creds, name, ttl, false, time.Now()); err != nil {
			return err
		}
		return waitApplied(ctx, cli, rev)
	})
	if err != nil {
		return wire.JoinToken{}, err
	}
	return t, nil
}

// RevokeToken cuts off the nodes of token name of the farm whose data dir
// is dir (`farm token revoke`): its etcd login is deleted and its nodes'
// entries with it, and once farm up has dropped its NATS login (waited
// for here) no connection of the token remains.
func RevokeToken(ctx context.Context, dir, name string) error {
	return withAdmin(ctx, dir, func(ctx context.Context, _ wire.Credentials, cli *clientv3.Client) error {
		found, rev, err := revokeToken(ctx, cli, name)
		if err != nil {
			return err
		}
		if !found {
			return fmt.Errorf("%w: %s", ErrNoToken, name)
		}
		return waitApplied(ctx, cli, rev)
	})
}

// Tokens lists the join tokens of the farm whose data dir is dir, by name
// (etcd lists keys in order).
func Tokens(ctx context.Context, dir string) ([]TokenInfo, error) {
	var out []TokenInfo
	err := withAdmin(ctx, dir, func(ctx context.Context, _ wire.Credentials, cli *clientv3.Client) error {
		recs, _, err := readTokens(ctx, cli)
		for _, r := range recs {
			out = append(out, TokenInfo{Name: r.Name, Created: r.Created, Expires: r.Expires})
		}
		return err
	})
	return out, err
}

// waitApplied waits until farm up has applied the token records as of
// revision want to its logins (NATS's follow them): it writes the revision
// it applied under wire.TokensAppliedKey.
func waitApplied(ctx context.Context, cli *clientv3.Client, want int64) error {
	for {
		resp, err := cli.Get(ctx, wire.TokensAppliedKey)
		if err != nil {
			return fmt.Errorf("localfarm: farm up did not apply the token change: %w", err)
		}
		if len(resp.Kvs) == 1 {
			if rev, err := strconv.ParseInt(string(resp.Kvs[0].Value), 10, 64); err == nil && rev >= want {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("localfarm: farm up did not apply the token change: %w", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// adminTimeout bounds what the token commands do: without it, a farm that
// is down would keep them waiting.
const adminTimeout = 30 * time.Second

// withAdmin runs fn with the credentials in dir and an etcd client logged
// in as root, within adminTimeout.
func withAdmin(ctx context.Context, dir string, fn func(context.Context, wire.Credentials, *clientv3.Client) error) error {
	creds, err := wire.ReadCredentials(dir)
	if err != nil {
		return fmt.Errorf("localfarm: %w (is %s the data dir of farm up?)", err, dir)
	}
	cli, err := connect.Etcd(connect.EtcdConfig{Endpoints: creds.EtcdEndpoints, User: creds.EtcdUser,
		Password: creds.EtcdPassword, TLS: connect.TLSFiles{CA: creds.CA}}, nil)
	if err != nil {
		return fmt.Errorf("localfarm: %w", err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(ctx, adminTimeout)
	defer cancel()
	if err := fn(ctx, creds, cli); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("%w (is farm up running with the data dir %s?)", err, dir)
		}
		return err
	}
	return nil
}
