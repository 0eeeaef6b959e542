package embedded

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Usage is what the member's store takes.
type Usage struct {
	// DBSize is the size of the db file, in bytes.
	DBSize int64
	// DBSizeInUse is the part of the file that holds data; the rest are
	// pages freed by compaction, which only a defragmentation gives back.
	DBSizeInUse int64
	// Keys counts the keys at the current revision.
	Keys int64
	// Revision is the store's current revision.
	Revision int64
}

// free is the part of the db file that a defragmentation would give back.
func (u Usage) free() int64 { return u.DBSize - u.DBSizeInUse }

// maintTimeout bounds one status read, compaction or defragmentation.
const maintTimeout = 5 * time.Minute

// Usage reads the member's db file size, the part of it in use and the
// number of keys.
func (e *Etcd) Usage(ctx context.Context) (Usage, error) {
	st, err := e.maint.Status(ctx, e.endpoints[0])
	if err != nil {
		return Usage{}, fmt.Errorf("%w: status: %w", ErrEtcd, err)
	}
	// A prefix of "" counts every key.
	keys, err := e.maint.Get(ctx, "", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return Usage{}, fmt.Errorf("%w: count keys: %w", ErrEtcd, err)
	}
	return Usage{DBSize: st.DbSize, DBSizeInUse: st.DbSizeInUse, Keys: keys.Count,
		Revision: keys.Header.Revision}, nil
}

// CompactAndDefrag drops all history before the current revision, waits
// until the freed pages are back in the db file's free list, then
// defragments, whatever the sizes; it returns the usage before and after.
// Reads and writes wait while it rewrites the file. Meant for the end of
// a run (benchmarks); the loop started by StartEtcd keeps a farm small.
func (e *Etcd) CompactAndDefrag(ctx context.Context) (before, after Usage, err error) {
	e.maintMu.Lock()
	defer e.maintMu.Unlock()
	if before, err = e.Usage(ctx); err != nil {
		return before, after, err
	}
	// Physical: return once the compaction has been applied to the backend.
	_, err = e.maint.Compact(ctx, before.Revision, clientv3.WithCompactPhysical())
	if err != nil && !errors.Is(err, rpctypes.ErrCompacted) {
		return before, after, fmt.Errorf("%w: compact to revision %d: %w", ErrEtcd, before.Revision, err)
	}
	if _, err = e.maint.Defragment(ctx, e.endpoints[0]); err != nil {
		return before, after, fmt.Errorf("%w: defragment: %w", ErrEtcd, err)
	}
	after, err = e.Usage(ctx)
	if err == nil {
		e.logDefrag("compacted and defragmented", before, after)
	}
	return before, after, err
}

// startDefragLoop checks every interval whether defragmenting is worth it,
// until Close.
func (e *Etcd) startDefragLoop(interval time.Duration) {
	ctx, cancel := context.WithCancel(context.Background())
	e.stopDefrag, e.defragDone = cancel, make(chan struct{})
	go func() {
		defer close(e.defragDone)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if err := e.defragIfWorthIt(ctx); err != nil && ctx.Err() == nil {
				e.log.Warn("defragmentation failed", "error", err)
			}
		}
	}()
}

// defragIfWorthIt defragments when the free part of the db file is at
// least half of it and at least defragMinFree bytes.
func (e *Etcd) defragIfWorthIt(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, maintTimeout)
	defer cancel()
	e.maintMu.Lock()
	defer e.maintMu.Unlock()
	before, err := e.Usage(ctx)
	if err != nil {
		return err
	}
	if free := before.free(); free < e.defragMinFree || 2*free < before.DBSize {
		e.log.Debug("defragmentation not worth it", "db_size", before.DBSize,
			"db_size_in_use", before.DBSizeInUse, "min_free", e.defragMinFree)
		return nil
	}
	if _, err := e.maint.Defragment(ctx, e.endpoints[0]); err != nil {
		return fmt.Errorf("%w: defragment: %w", ErrEtcd, err)
	}
	after, err := e.Usage(ctx)
	if err != nil {
		return err
	}
	e.logDefrag("defragmented", before, after)
	return nil
}

func (e *Etcd) logDefrag(msg string, before, after Usage) {
	e.log.Info(msg, "db_size_before", before.DBSize, "db_size_after", after.DBSize,
		"db_size_in_use_before", before.DBSizeInUse, "db_size_in_use_after", after.DBSizeInUse,
		"keys", after.Keys)
}
