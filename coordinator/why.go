package coordinator

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/latentfarm/latentfarm/shared/wire"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// waitQuery is what explaining a job's wait needs from the leader's state.
type waitQuery struct {
	class   wire.Class
	need    int64
	kind    string
	waiting int // tasks neither running nor ended
	ahead   int // tasks of other jobs before these in the class's queues
}

// waitReasons says why job id's waiting tasks wait, from the node entries
// and exclusions in etcd. It returns nil when nothing waits.
func (c *Coordinator) waitReasons(ctx context.Context, id string) ([]string, error) {
	c.mu.Lock()
	q, ok := c.waitQueryLocked(id)
	c.mu.Unlock()
	if !ok || q.waiting == 0 {
		return nil, nil
	}
	nodes, err := c.readNodes(ctx)
	if err != nil {
		return nil, err
	}
	resp, err := c.etcd.Get(ctx, wire.ExclusionsPrefix, clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("coordinator: read exclusions: %w", err)
	}
	excluded := map[string]string{}
	for _, kv := range resp.Kvs {
		var e wire.Exclusion
		if json.Unmarshal(kv.Value, &e) == nil && e.Kind == q.kind {
			excluded[e.NodeID] = e.Reason
		}
	}
	return explainWait(q, nodes, excluded), nil
}

// waitQueryLocked gathers a waitQuery for job id. Call with c.mu held.
func (c *Coordinator) waitQueryLocked(id string) (waitQuery, bool) {
	j, ok := c.jobs[id]
	if !ok || !j.active() || wire.JobFinished(j.rec.State) {
		return waitQuery{}, false
	}
	q := waitQuery{class: j.rec.Class, need: j.rec.VRAMBytes, kind: wire.FailureKind(j.rec.Spec.Kind, j.rec.Spec.Model)}
	q.waiting = waitingTasks(j)
	rank := priorityRank(j.rec.Spec.Priority)
	for _, o := range c.jobs {
		if o == j || !o.active() || wire.JobFinished(o.rec.State) || o.rec.Class != j.rec.Class {
			continue
		}
		or := priorityRank(o.rec.Spec.Priority)
		if or < rank || (or == rank && o.rec.CreatedAt.Before(j.rec.CreatedAt)) {
			q.ahead += waitingTasks(o)
		}
	}
	return q, true
}

func waitingTasks(j *job) int {
	n := 0
	for i, s := range j.state {
		if _, run := j.running[i]; !run && (s == tsQueued || s == tsRetryWait) {
			n++
		}
	}
	return n
}

func priorityRank(p wire.Priority) int {
	for i, q := range wire.Priorities {
		if q == p {
			return i
		}
	}
	return len(wire.Priorities)
}

// explainWait turns the farm's nodes into reasons why tasks of q.class wait.
func explainWait(q waitQuery, nodes []wire.NodeInfo, excluded map[string]string) []string {
	if len(nodes) == 0 {
		return []string{fmt.Sprintf("no node is registered: %d task(s) of class %s wait for a node with at least %s",
			q.waiting, q.class, wire.FormatBytes(classMin(q.class)))}
	}
	var capable []wire.NodeInfo
	var refusals []string
	for _, n := range nodes {
		ok, why := nodeServes(n, q.class)
		if ok {
			capable = append(capable, n)
		} else {
			refusals = append(refusals, "node "+n.ID+": "+why)
		}
	}
	if len(capable) == 0 {
		out := []string{fmt.Sprintf("no registered node can run class %s: a task needs about %s and a node of class %s needs %s; %d task(s) wait",
			q.class, wire.FormatBytes(q.need), q.class, wire.FormatBytes(classMin(q.class)), q.waiting)}
		if len(refusals) > 5 {
			refusals = append(refusals[:5], fmt.Sprintf("... and %d more nodes", len(refusals)-5))
		}
		return append(out, refusals...)
	}
	var eligible, excl, draining, short []string
	busy := 0
	for _, n := range capable {
		switch {
		case excluded[n.ID] != "":
			excl = append(excl, fmt.Sprintf("%s (%s)", n.ID, excluded[n.ID]))
		case n.State == wire.NodeDraining:
			draining = append(draining, n.ID)
		case n.State != wire.NodeBusy && n.Backend == wire.BackendCUDA && liveFree(n) < q.need:
			short = append(short, fmt.Sprintf("node %s has %s of VRAM free now, a task needs about %s",
				n.ID, wire.FormatBytes(liveFree(n)), wire.FormatBytes(q.need)))
		default:
			eligible = append(eligible, n.ID)
			if n.State == wire.NodeBusy {
				busy++
			}
		}
	}
	switch {
	case len(eligible) == 0 && len(excl) > 0 && len(draining) == 0:
		return []string{fmt.Sprintf("every node that can run class %s is excluded from %s after repeated failures: %s",
			q.class, q.kind, strings.Join(excl, "; "))}
	case len(eligible) == 0 && len(short) > 0:
		return append([]string{fmt.Sprintf("every idle node that can run class %s lacks free VRAM right now (another process uses its GPU); %d task(s) wait", q.class, q.waiting)}, short...)
	case len(eligible) == 0:
		msg := fmt.Sprintf("every node that can run class %s is draining or excluded: draining %s", q.class, strings.Join(draining, ", "))
		if len(excl) > 0 {
			msg += "; excluded " + strings.Join(excl, "; ")
		}
		return []string{msg}
	}
	sort.Strings(eligible)
	msg := fmt.Sprintf("%d task(s) queued for class %s: %d node(s) can run them (%d busy)", q.waiting, q.class, len(eligible), busy)
	if q.ahead > 0 {
		msg += fmt.Sprintf("; %d task(s) of other jobs are ahead in the queue", q.ahead)
	}
	return []string{msg}
}

// nodeServes says whether n pulls class c, and why not.
func nodeServes(n wire.NodeInfo, c wire.Class) (bool, string) {
	can, why := wire.CanServe(n.Backend, n.UsableBytes, c)
	if len(n.Classes) > 0 && !n.Serves(c) {
		if why == "" {
			why = fmt.Sprintf("does not pull class %s (pulls %v)", c, n.Classes)
		}
		return false, why
	}
	return can, why
}

// liveFree is a node's least free device memory as it last reported it.
func liveFree(n wire.NodeInfo) int64 {
	_, free := n.VRAM()
	if len(n.GPUs) == 0 {
		return n.UsableBytes
	}
	least := free
	for _, g := range n.GPUs {
		least = min(least, g.FreeVRAM)
	}
	return least
}

func classMin(c wire.Class) int64 {
	if _, tier, err := wire.ParseClass(c); err == nil {
		return tier.TaskMaxBytes()
	}
	return 0
}

// readNodes reads every node entry, sorted by id.
func (c *Coordinator) readNodes(ctx context.Context) ([]wire.NodeInfo, error) {
	resp, err := c.etcd.Get(ctx, wire.NodesPrefix, clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("coordinator: read nodes: %w", err)
	}
	nodes := make([]wire.NodeInfo, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		var n wire.NodeInfo
		if err := json.Unmarshal(kv.Value, &n); err != nil {
			c.log.Warn("skipping unreadable node entry", "key", string(kv.Key), "error", err)
			continue
		}
		nodes = append(nodes, n)
	}
	sort.Slice(nodes, func(a, b int) bool { return nodes[a].ID < nodes[b].ID })
	return nodes, nil
}
