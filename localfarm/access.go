package localfarm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/latentfarm/latentfarm/embedded"
	"github.com/latentfarm/latentfarm/shared/wire"
	"go.etcd.io/etcd/api/v3/authpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// The farm's logins (docs/SECURITY.md lists them with what each may do):
//
//   - the admin: NATS user credentials.json names, allowed everything; etcd
//     root; the S3 root keys. farm up sets up with it (etcd users and
//     roles, the bucket and its policy, the streams and consumers), and the
//     CLI and farm token use it from credentials.json.
//   - the coordinator: its own NATS, etcd and S3 logins, with secrets made
//     afresh at every start of farm up.
//   - one login per join token, tokenUser(name), for the token's nodes.
const coordinatorUser = "coordinator"

// tokenUser is the NATS and etcd user (and etcd role) of join token name.
func tokenUser(name string) string { return tokenUserPrefix + name }

// tokenUserPrefix starts the users of join tokens and no other user.
const tokenUserPrefix = "node-"

// coordinatorNATSUser may publish tasks, their wake messages, cancels and
// node control messages; make the JetStream API requests the coordinator does: the
// info of both streams (it checks them at start), purge TASKS (a cancelled
// job's pending tasks), the info of every consumer it reads (the task
// consumers' backlog, the results consumer), fetch and ack results; and
// read progress and the default inboxes. It may not create, change or
// delete a stream or a consumer: farm up makes them with the admin login.
func coordinatorNATSUser(password string) embedded.NATSUser {
	pub := []string{wire.TasksSubjects, wire.WakeAll, wire.CancelAll, wire.NodeControlAll,
		wire.StreamInfoSubject(wire.TasksStream), wire.StreamInfoSubject(wire.ResultsStream),
		wire.StreamPurgeSubject(wire.TasksStream),
		wire.ConsumerInfoSubject(wire.ResultsStream, wire.ResultsConsumer),
		wire.ConsumerNextSubject(wire.ResultsStream, wire.ResultsConsumer),
		wire.AckSubjects(wire.ResultsStream)}
	for _, name := range taskConsumers() {
		pub = append(pub, wire.ConsumerInfoSubject(wire.TasksStream, name))
	}
	return embedded.NATSUser{Name: coordinatorUser, Password: password, Publish: pub,
		Subscribe: []string{wire.ProgressAll, wire.InboxAll}}
}

// taskConsumers are the names of the consumers on TASKS.
func taskConsumers() []string {
	var out []string
	for _, c := range wire.AllClasses() {
		for _, p := range wire.Priorities {
			out = append(out, wire.TaskConsumer(c, p))
		}
	}
	return out
}

// nodeNATSUser may fetch from and read the info of the task consumers, ack
// tasks, publish results and progress; read cancels, control messages,
// task announcements and its own inboxes. It may not publish a task,
// create, change or delete a stream or a consumer, or read another login's
// replies. password may be a bcrypt hash.
func nodeNATSUser(user, password string) embedded.NATSUser {
	pub := []string{wire.ResultsSubjects, wire.ProgressAll, wire.AckSubjects(wire.TasksStream)}
	for _, name := range taskConsumers() {
		pub = append(pub, wire.ConsumerInfoSubject(wire.TasksStream, name), wire.ConsumerNextSubject(wire.TasksStream, name))
	}
	return embedded.NATSUser{Name: user, Password: password, Publish: pub,
		Subscribe: []string{wire.CancelAll, wire.NodeControlAll, wire.WakeAll, wire.InboxSubjects(user)}}
}

// etcdPerm is one permission of an etcd role: the key alone when end is
// empty, else the range [key, end).
type etcdPerm struct {
	key, end string
	perm     authpb.Permission_Type
}

func prefixPerm(prefix string, p authpb.Permission_Type) etcdPerm {
	return etcdPerm{key: prefix, end: clientv3.GetPrefixRangeEnd(prefix), perm: p}
}

// coordinatorEtcdPerms: everything under the farm's root, nothing outside
// it (the token records, users and roles are root's).
func coordinatorEtcdPerms() []etcdPerm {
	return []etcdPerm{prefixPerm(wire.EtcdRoot, clientv3.PermReadWrite)}
}

// nodeEtcdPerms lets the nodes of token name write their own entries (ids
// name and name-*, see wire.JoinToken.AllowsNodeID) and read the entries
// of all nodes (to find one with ffmpeg), the cancelled jobs and the
// exclusions; nothing else, jobs and tasks included.
func nodeEtcdPerms(name string) []etcdPerm {
	return []etcdPerm{
		prefixPerm(wire.NodesPrefix, clientv3.PermRead),
		{key: wire.NodeKey(name), perm: clientv3.PermReadWrite},
		prefixPerm(wire.NodeKey(name+"-"), clientv3.PermReadWrite),
		prefixPerm(wire.CancelledPrefix, clientv3.PermRead),
		prefixPerm(wire.ExclusionsPrefix, clientv3.PermRead),
	}
}

// ensureEtcdLogin makes user (with password) and its role of the same name
// hold exactly perms; it is idempotent.
func ensureEtcdLogin(ctx context.Context, cli *clientv3.Client, user, password string, perms []etcdPerm) error {
	if err := ensureEtcdRole(ctx, cli, user, perms); err != nil {
		return err
	}
	if _, err := cli.UserAdd(ctx, user, password); errors.Is(err, rpctypes.ErrUserAlreadyExist) {
		if _, err := cli.UserChangePassword(ctx, user, password); err != nil {
			return fmt.Errorf("localfarm: etcd user %s: %w", user, err)
		}
	} else if err != nil {
		return fmt.Errorf("localfarm: etcd user %s: %w", user, err)
	}
	if _, err := cli.UserGrantRole(ctx, user, user); err != nil {
		return fmt.Errorf("localfarm: etcd user %s: grant role: %w", user, err)
	}
	return nil
}

// ensureEtcdRole makes role hold exactly perms.
func ensureEtcdRole(ctx context.Context, cli *clientv3.Client, role string, perms []etcdPerm) error {
	if _, err := cli.RoleAdd(ctx, role); err != nil && !errors.Is(err, rpctypes.ErrRoleAlreadyExist) {
		return fmt.Errorf("localfarm: etcd role %s: %w", role, err)
	}
	got, err := cli.RoleGet(ctx, role)
	if err != nil {
		return fmt.Errorf("localfarm: etcd role %s: %w", role, err)
	}
	have := map[etcdPerm]bool{}
	for _, p := range got.Perm {
		have[etcdPerm{key: string(p.Key), end: string(p.RangeEnd), perm: p.PermType}] = true
	}
	for _, p := range perms {
		if have[p] {
			delete(have, p)
			continue
		}
		if _, err := cli.RoleGrantPermission(ctx, role, p.key, p.end, clientv3.PermissionType(p.perm)); err != nil {
			return fmt.Errorf("localfarm: etcd role %s: grant %s: %w", role, p.key, err)
		}
	}
	for p := range have {
		if _, err := cli.RoleRevokePermission(ctx, role, p.key, p.end); err != nil {
			return fmt.Errorf("localfarm: etcd role %s: revoke %s: %w", role, p.key, err)
		}
	}
	return nil
}

// deleteEtcdLogin removes user and its role; gone already is fine.
func deleteEtcdLogin(ctx context.Context, cli *clientv3.Client, user string) error {
	if _, err := cli.UserDelete(ctx, user); err != nil && !errors.Is(err, rpctypes.ErrUserNotFound) {
		return fmt.Errorf("localfarm: delete etcd user %s: %w", user, err)
	}
	if _, err := cli.RoleDelete(ctx, user); err != nil && !errors.Is(err, rpctypes.ErrRoleNotFound) {
		return fmt.Errorf("localfarm: delete etcd role %s: %w", user, err)
	}
	return nil
}

// bucketPolicy is the farm's bucket policy for the access keys of the
// coordinator and of the join tokens (nodes, none or more). The
// coordinator finds and lists the bucket, reads every object (and so may
// presign reads and stat), writes the objects of jobs (manifests, outputs)
// and inputs, and deletes the objects of jobs (a cancelled or deleted
// job's). The nodes read every object (models, inputs, the frames an
// assembly reads), find the bucket and write the objects of jobs (frames,
// outputs). Neither may write or delete a model, make or delete a bucket
// or change its policy: the root keys (the admin's) may.
func bucketPolicy(bucket, coordinatorKey string, nodeKeys []string) (string, error) {
	arn := "arn:aws:s3:::" + bucket
	jobs := arn + "/" + wire.JobObjectsPrefix("*") + "*"
	type statement struct {
		Sid       string
		Effect    string
		Principal map[string][]string
		Action    []string
		Resource  []string
	}
	coord := map[string][]string{"AWS": {coordinatorKey}}
	statements := []statement{
		{Sid: "CoordinatorFindsAndLists", Effect: "Allow", Principal: coord, Action: []string{"s3:ListBucket"}, Resource: []string{arn}},
		{Sid: "CoordinatorReads", Effect: "Allow", Principal: coord, Action: []string{"s3:GetObject"}, Resource: []string{arn + "/*"}},
		{Sid: "CoordinatorWritesJobsAndInputs", Effect: "Allow", Principal: coord, Action: []string{"s3:PutObject"},
			Resource: []string{jobs, arn + "/" + wire.InputsPrefix + "*"}},
		{Sid: "CoordinatorDeletesJobs", Effect: "Allow", Principal: coord, Action: []string{"s3:DeleteObject"}, Resource: []string{jobs}},
	}
	if len(nodeKeys) > 0 {
		nodes := map[string][]string{"AWS": nodeKeys}
		statements = append(statements,
			statement{Sid: "NodesFindTheBucket", Effect: "Allow", Principal: nodes, Action: []string{"s3:ListBucket"}, Resource: []string{arn}},
			statement{Sid: "NodesRead", Effect: "Allow", Principal: nodes, Action: []string{"s3:GetObject"}, Resource: []string{arn + "/*"}},
			statement{Sid: "NodesWriteJobs", Effect: "Allow", Principal: nodes, Action: []string{"s3:PutObject"}, Resource: []string{jobs}})
	}
	data, err := json.Marshal(struct {
		Version   string
		Statement []statement
	}{Version: "2012-10-17", Statement: statements})
	if err != nil {
		return "", fmt.Errorf("localfarm: s3 policy: %w", err)
	}
	return string(data), nil
}
