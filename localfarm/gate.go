package localfarm

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/latentfarm/latentfarm/embedded"
	"github.com/latentfarm/latentfarm/shared/connect"
	"github.com/latentfarm/latentfarm/shared/wire"
	clientv3 "go.etcd.io/etcd/client/v3"
	"golang.org/x/crypto/bcrypt"
)

// gate keeps the farm's logins in step with the join token records in
// etcd, which `farm token` (any process with the admin credentials) writes:
// NATS lets in the coordinator and every live token and no one else but
// the admin; the S3 gateway knows the coordinator's and the live tokens'
// keys and the bucket's policy names them; the etcd logins of tokens that
// are gone are deleted; expired tokens are revoked. It says what it
// applied under wire.TokensAppliedKey.
type gate struct {
	cli  *clientv3.Client // root
	nats *embedded.NATS
	s3   *connect.S3Client // root
	// bucket is the farm's bucket; accounts the gateway's accounts file.
	bucket, accounts string
	log              hclog.Logger
	// coordNATS is the coordinator's NATS password, coordS3 its S3 key.
	coordNATS string
	coordS3   embedded.S3Account
}

// apply applies the records as they are now; it returns the revision it
// read them at and the earliest expiry to come (zero: none).
func (g *gate) apply(ctx context.Context) (rev int64, next time.Time, err error) {
	recs, rev, err := readTokens(ctx, g.cli)
	if err != nil {
		return 0, next, err
	}
	users := []embedded.NATSUser{coordinatorNATSUser(g.coordNATS)}
	var keys []embedded.S3Account
	live := map[string]bool{}
	now := time.Now()
	for _, r := range recs {
		if r.expired(now) {
			g.log.Info("join token expired: revoking it", "token", r.Name)
			if _, _, err := revokeToken(ctx, g.cli, r.Name); err != nil {
				return 0, next, err
			}
			continue
		}
		// Roles follow this version's idea of what a node may do.
		if err := ensureEtcdRole(ctx, g.cli, r.EtcdUser, nodeEtcdPerms(r.Name)); err != nil {
			return 0, next, err
		}
		users = append(users, nodeNATSUser(r.NATSUser, r.NATSPasswordHash))
		keys = append(keys, embedded.S3Account{AccessKey: r.S3AccessKey, SecretKey: r.S3SecretKey})
		live[r.EtcdUser] = true
		if !r.Expires.IsZero() && (next.IsZero() || r.Expires.Before(next)) {
			next = r.Expires
		}
	}
	if err := g.nats.SetUsers(users); err != nil {
		return 0, next, fmt.Errorf("localfarm: %w", err)
	}
	if err := g.applyS3(ctx, keys); err != nil {
		return 0, next, err
	}
	list, err := g.cli.UserList(ctx)
	if err != nil {
		return 0, next, fmt.Errorf("localfarm: etcd users: %w", err)
	}
	for _, u := range list.Users {
		name, ok := strings.CutPrefix(u, tokenUserPrefix)
		if !ok || live[u] {
			continue
		}
		// A token issued since the records were read has its record
		// already (issueToken writes it before the login): keep its login.
		resp, err := g.cli.Get(ctx, wire.TokenKey(name), clientv3.WithCountOnly())
		if err != nil {
			return 0, next, fmt.Errorf("localfarm: tokens: %w", err)
		}
		if resp.Count == 0 {
			if err := deleteEtcdLogin(ctx, g.cli, u); err != nil {
				return 0, next, err
			}
		}
	}
	if _, err := g.cli.Put(ctx, wire.TokensAppliedKey, strconv.FormatInt(rev, 10)); err != nil {
		return 0, next, fmt.Errorf("localfarm: tokens: %w", err)
	}
	return rev, next, nil
}

// applyS3 gives the gateway the coordinator's and the tokens' access keys
// and the bucket the policy that lets them do their work. The keys go
// first: the gateway refuses a policy that names a key it does not know.
func (g *gate) applyS3(ctx context.Context, keys []embedded.S3Account) error {
	if err := embedded.WriteS3Accounts(g.accounts, append([]embedded.S3Account{g.coordS3}, keys...)); err != nil {
		return fmt.Errorf("localfarm: %w", err)
	}
	ids := make([]string, len(keys))
	for i, k := range keys {
		ids[i] = k.AccessKey
	}
	policy, err := bucketPolicy(g.bucket, g.coordS3.AccessKey, ids)
	if err != nil {
		return err
	}
	if err := g.s3.SetBucketPolicy(ctx, g.bucket, policy); err != nil {
		return fmt.Errorf("localfarm: s3 bucket policy: %w", err)
	}
	return nil
}

// run applies the records again whenever they change after rev, and when
// the next token expires, until ctx ends.
func (g *gate) run(ctx context.Context, rev int64, next time.Time) {
	for ctx.Err() == nil {
		wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
		ch := g.cli.Watch(wctx, wire.TokensPrefix, clientv3.WithPrefix(), clientv3.WithRev(rev+1))
		expiry := time.NewTimer(time.Until(next))
		if next.IsZero() {
			expiry.Stop()
		}
		select {
		case <-ctx.Done():
		case resp, ok := <-ch:
			if !ok || resp.Err() != nil {
				// The watch ended (compaction, lost leader): list again
				// after a pause.
				pause(ctx, 250*time.Millisecond)
			}
		case <-expiry.C:
		}
		expiry.Stop()
		cancel()
		for ctx.Err() == nil {
			r, n, err := g.apply(ctx)
			if err == nil {
				rev, next = r, n
				break
			}
			if ctx.Err() == nil {
				g.log.Warn("applying join tokens failed", "error", err)
			}
			pause(ctx, time.Second)
		}
	}
}

func pause(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// login is a NATS, etcd and S3 login of farm up's own parts.
type login struct {
	nats, etcd string // passwords
	s3         embedded.S3Account
}

// startAccess sets up the farm's logins: the coordinator's (new secrets),
// the local nodes' token (new), the default join token (kept while it is
// good), then lets NATS in on them and keeps it so. The returned func
// stops the keeping.
func (f *Farm) startAccess(ctx context.Context) (stop func(), err error) {
	if f.admin, err = connect.Etcd(f.EtcdConfig(), nil); err != nil {
		return nil, fmt.Errorf("localfarm: %w", err)
	}
	for _, p := range []struct {
		v   *string
		gen func() (string, error)
	}{{&f.coord.nats, secret(32)}, {&f.coord.etcd, secret(32)}, {&f.coord.s3.AccessKey, accessKey}, {&f.coord.s3.SecretKey, secret(40)}} {
		if *p.v, err = p.gen(); err != nil {
			return nil, fmt.Errorf("localfarm: coordinator login: %w", err)
		}
	}
	if err := ensureEtcdLogin(ctx, f.admin, coordinatorUser, f.coord.etcd, coordinatorEtcdPerms()); err != nil {
		return nil, err
	}
	creds := f.Credentials()
	if f.opts.Nodes > 0 {
		if f.local, _, err = issueToken(ctx, f.admin, creds, localTokenName, 0, true, time.Now()); err != nil {
			return nil, err
		}
	} else if _, _, err := revokeToken(ctx, f.admin, localTokenName); err != nil {
		return nil, err
	}
	if err := f.ensureJoinToken(ctx, creds); err != nil {
		return nil, err
	}
	s3, err := connect.S3(f.S3Config())
	if err != nil {
		return nil, fmt.Errorf("localfarm: %w", err)
	}
	g := &gate{cli: f.admin, nats: f.nats, s3: s3, bucket: f.opts.Bucket, accounts: f.path(s3AccountsFile),
		log: f.log.Named("tokens"), coordNATS: f.coord.nats, coordS3: f.coord.s3}
	rev, next, err := g.apply(ctx)
	if err != nil {
		return nil, err
	}
	gctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		g.run(gctx, rev, next)
	}()
	return func() { cancel(); <-done }, nil
}

// ensureJoinToken keeps the default join token in JoinTokenFile while it
// is good: issued for this farm's endpoints and CA, and neither revoked
// nor expired. Otherwise it issues a new one and writes the file.
func (f *Farm) ensureJoinToken(ctx context.Context, creds wire.Credentials) error {
	path := f.path(JoinTokenFile)
	if t, err := wire.ReadJoinToken(path); err == nil && t.Name == DefaultTokenName && forFarm(t, creds) {
		resp, err := f.admin.Get(ctx, wire.TokenKey(t.Name))
		if err != nil {
			return fmt.Errorf("localfarm: join token: %w", err)
		}
		var rec tokenRecord
		if len(resp.Kvs) == 1 && json.Unmarshal(resp.Kvs[0].Value, &rec) == nil && !rec.expired(time.Now()) &&
			bcrypt.CompareHashAndPassword([]byte(rec.NATSPasswordHash), []byte(t.NATSPassword)) == nil {
			return nil
		}
	}
	t, _, err := issueToken(ctx, f.admin, creds, DefaultTokenName, 0, true, time.Now())
	if err != nil {
		return err
	}
	if err := wire.WriteJoinToken(path, t); err != nil {
		return fmt.Errorf("localfarm: %w", err)
	}
	f.log.Info("issued the join token", "file", path)
	return nil
}

// forFarm reports whether t points at the endpoints and CA of creds.
func forFarm(t wire.JoinToken, creds wire.Credentials) bool {
	return t.CA == creds.CA && t.NATSURL == creds.NATSURL && slices.Equal(t.EtcdEndpoints, creds.EtcdEndpoints) &&
		t.S3Endpoint == creds.S3Endpoint && t.S3Bucket == creds.S3Bucket
}
