package coordinator

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/latentfarm/latentfarm/shared/connect"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// leaseFile holds, in Options.StateDir, the lease of this coordinator's
// election session. A coordinator that crashed left its election key
// alive until the lease expires (ElectionTTL); when it starts again it
// revokes that lease first and so leads again at once.
const leaseFile = "election.lease"

func (c *Coordinator) leaseFile() connect.LeaseFile {
	if c.opts.StateDir == "" {
		return ""
	}
	return connect.LeaseFile(filepath.Join(c.opts.StateDir, leaseFile))
}

// revokeLastTerm revokes the election lease of this coordinator's
// previous run, if it recorded one.
func (c *Coordinator) revokeLastTerm(ctx context.Context) error {
	f := c.leaseFile()
	if f == "" {
		return nil
	}
	revoked, err := f.RevokeLast(ctx, c.etcd)
	if err != nil {
		return fmt.Errorf("coordinator: %w", err)
	}
	if revoked {
		c.log.Info("revoked the election lease of this coordinator's last run")
	}
	return nil
}

// recordTerm records the election session's lease in the state folder.
func (c *Coordinator) recordTerm(lease clientv3.LeaseID) error {
	if f := c.leaseFile(); f != "" {
		if err := f.Record(lease); err != nil {
			return fmt.Errorf("coordinator: %w", err)
		}
	}
	return nil
}
