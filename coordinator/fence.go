package coordinator

import (
	"context"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// fence is what every leader write is conditioned on: the election key this
// coordinator won, at the revision it was created. A deposed leader (its
// session expired and another coordinator won, or its key was deleted)
// fails the comparison, so its writes are refused by etcd itself, in the
// same transaction, whatever its in-memory state still believes.
type fence struct {
	key string
	rev int64
	// depose ends this term of leadership (cancels lead's context).
	depose context.CancelFunc
}

func (f fence) cmp() clientv3.Cmp {
	return clientv3.Compare(clientv3.CreateRevision(f.key), "=", f.rev)
}

// setFence records the term won in el; depose is called when a write finds
// the term over.
func (c *Coordinator) setFence(el *concurrency.Election, depose context.CancelFunc) {
	c.mu.Lock()
	c.fence = fence{key: el.Key(), rev: el.Rev(), depose: depose}
	c.mu.Unlock()
}

// leaderTxn commits then (and else) if this coordinator still holds its
// term and cmps hold. It returns errNotLeader, and ends the term, when the
// fence fails; ok reports whether cmps held.
func (c *Coordinator) leaderTxn(ctx context.Context, cmps []clientv3.Cmp, then ...clientv3.Op) (ok bool, err error) {
	c.mu.Lock()
	f := c.fence
	c.mu.Unlock()
	if f.key == "" {
		return false, errNotLeader
	}
	// The outer comparison is the fence alone; the caller's comparisons are
	// a nested transaction, so a failed fence is told apart from a failed
	// caller's condition by which branch ran.
	inner := clientv3.OpTxn(cmps, then, nil)
	resp, err := c.etcd.Txn(ctx).If(f.cmp()).Then(inner).Commit()
	if err != nil {
		return false, fmt.Errorf("coordinator: etcd write: %w", err)
	}
	if !resp.Succeeded {
		c.log.Warn("deposed: a write found another term in etcd", "election_key", f.key, "term_rev", f.rev)
		if f.depose != nil {
			f.depose()
		}
		return false, errNotLeader
	}
	return resp.Responses[0].GetResponseTxn().Succeeded, nil
}
