package coordinator

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

// leaseFile holds, in Options.StateDir, the lease of this coordinator's
// election session. A coordinator that crashed left its election key
// alive until the lease expires (ElectionTTL); when it starts again it
// revokes that lease first and so leads again at once.
const leaseFile = "election.lease"

// revokeLastTerm revokes the election lease recorded by this coordinator's
// previous run, if any. A lease that no longer exists is no error.
func (c *Coordinator) revokeLastTerm(ctx context.Context) error {
	if c.opts.StateDir == "" {
		return nil
	}
	b, err := os.ReadFile(filepath.Join(c.opts.StateDir, leaseFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("coordinator: read last election lease: %w", err)
	}
	id, err := strconv.ParseInt(strings.TrimSpace(string(b)), 16, 64)
	if err != nil {
		c.log.Warn("ignoring unreadable election lease file", "error", err)
		return nil
	}
	_, err = c.etcd.Revoke(ctx, clientv3.LeaseID(id))
	if err != nil && !errors.Is(err, rpctypes.ErrLeaseNotFound) {
		return fmt.Errorf("coordinator: revoke last election lease %x: %w", id, err)
	}
	if err == nil {
		c.log.Info("revoked the election lease of this coordinator's last run", "lease", fmt.Sprintf("%x", id))
	}
	return nil
}

// recordTerm writes the election session's lease to the state folder.
func (c *Coordinator) recordTerm(lease clientv3.LeaseID) error {
	if c.opts.StateDir == "" {
		return nil
	}
	p := filepath.Join(c.opts.StateDir, leaseFile)
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, []byte(fmt.Sprintf("%x\n", int64(lease))), 0o600); err != nil {
		return fmt.Errorf("coordinator: record election lease: %w", err)
	}
	if err := os.Rename(tmp, p); err != nil {
		return fmt.Errorf("coordinator: record election lease: %w", err)
	}
	return nil
}
