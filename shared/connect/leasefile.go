package connect

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// LeaseFile is a file in which a process records the etcd lease its keys
// live under (a coordinator's election key, a node's entry). Restarted
// after a crash, the process revokes that lease first: its old keys go at
// once instead of when the lease expires. One process per file.
type LeaseFile string

// RevokeLast revokes the lease recorded in f, if any, and reports whether
// there was one to revoke. A missing file, or a lease that has expired
// already, is no error.
func (f LeaseFile) RevokeLast(ctx context.Context, cli *clientv3.Client) (revoked bool, err error) {
	b, err := os.ReadFile(string(f))
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("connect: read lease file: %w", err)
	}
	id, err := strconv.ParseInt(strings.TrimSpace(string(b)), 16, 64)
	if err != nil {
		return false, nil // unreadable: nothing to revoke
	}
	_, err = cli.Revoke(ctx, clientv3.LeaseID(id))
	if errors.Is(err, rpctypes.ErrLeaseNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("connect: revoke lease %x: %w", id, err)
	}
	return true, nil
}

// Record writes id to f (its folder made if needed), replacing it whole.
func (f LeaseFile) Record(id clientv3.LeaseID) error {
	p := string(f)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return fmt.Errorf("connect: lease file: %w", err)
	}
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, []byte(fmt.Sprintf("%x\n", int64(id))), 0o600); err != nil {
		return fmt.Errorf("connect: lease file: %w", err)
	}
	if err := os.Rename(tmp, p); err != nil {
		return fmt.Errorf("connect: lease file: %w", err)
	}
	return nil
}
