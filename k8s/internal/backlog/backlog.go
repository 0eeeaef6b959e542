// Package backlog decides which node pool counts which task classes in its
// KEDA ScaledObject, and renders the kustomize patches that say so (files.go).
//
// A task's class is the smallest tier its memory estimate fits, pinned to a
// backend only when the job names one (wire.ClassFor), so most work lands in
// classes that no pool is named after: vram4, cuda4, cpu4. A running node
// pulls every class it can serve, but a pool at zero wakes only for the
// consumers its ScaledObject reads. So in each overlay every class that some
// pool can serve is counted by exactly one pool class, the smallest that
// serves it, and no class that no pool serves is counted at all. Pools of the
// same class (cuda24 on demand and on spot) share their number.
//
// It must never let two pool classes count the same class: both would grow
// for the same tasks, and the larger pool would hold cards the smaller one
// is cheaper for.
package backlog

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/latentfarm/latentfarm/shared/wire"
)

// Overlay is a kustomization people deploy.
type Overlay struct {
	// Dir is its folder, relative to the k8s folder.
	Dir string
	// Auth, when set, names the TriggerAuthentication the overlay's triggers
	// take the NATS monitoring endpoint from (there is no in-cluster NATS);
	// the generated component AuthComponent in Dir makes them do so.
	Auth string
}

// Overlays are the overlays of the k8s folder (k8s/README.md).
var Overlays = []Overlay{
	{Dir: "overlays/dev"},
	{Dir: "overlays/gpu"},
	{Dir: "overlays/external", Auth: "nats-monitoring"},
}

// Pool is one node pool: a folder under pools/ with its class.
type Pool struct {
	// Name is the pool's latentfarm.io/pool label (cuda24-spot).
	Name string
	// Dir is its folder, relative to the k8s folder.
	Dir string
	// Class is its latentfarm.io/class label (cuda24); Backend and Tier are
	// what the class says.
	Class   wire.Class
	Backend string
	Tier    wire.Tier
}

// Usable is the least memory a node of the pool has: what its tier needs.
func (p Pool) Usable() int64 { return p.Tier.TaskMaxBytes() }

// Serves reports whether the pool's nodes serve tasks of class c.
func (p Pool) Serves(c wire.Class) bool {
	ok, _ := wire.CanServe(p.Backend, p.Usable(), c)
	return ok
}

// newPool checks a pool's class: it must name a backend, cpu or cuda.
func newPool(name, dir string, class wire.Class) (Pool, error) {
	backend, tier, err := wire.ParseClass(class)
	if err != nil {
		return Pool{}, fmt.Errorf("backlog: pool %s: %w", name, err)
	}
	if backend == wire.BackendAny {
		return Pool{}, fmt.Errorf("backlog: pool %s: class %s names no backend; a pool's nodes run one (cpu%d, cuda%d)", name, class, tier.GiB, tier.GiB)
	}
	return Pool{Name: name, Dir: dir, Class: class, Backend: backend, Tier: tier}, nil
}

// backendRank orders pools of equal tier that serve the same class (a vram
// class, with both a CPU and a CUDA pool of that tier): CUDA counts it,
// because a GPU renders in seconds what takes a CPU minutes.
func backendRank(backend string) int {
	if backend == wire.BackendCUDA {
		return 0
	}
	return 1
}

// Owner returns the pool class that counts class c among pools: of the pools
// that serve c, the one of the smallest tier (CUDA before CPU at equal tier).
// ok is false when no pool serves c.
func Owner(pools []Pool, c wire.Class) (owner wire.Class, ok bool) {
	var best *Pool
	for i := range pools {
		p := &pools[i]
		if !p.Serves(c) {
			continue
		}
		if best == nil || p.Tier.GiB < best.Tier.GiB ||
			(p.Tier.GiB == best.Tier.GiB && backendRank(p.Backend) < backendRank(best.Backend)) {
			best = p
		}
	}
	if best == nil {
		return "", false
	}
	return best.Class, true
}

// Counts returns the classes each pool class of pools counts, in
// wire.AllClasses order (by tier, then vram, cuda, cpu).
func Counts(pools []Pool) map[wire.Class][]wire.Class {
	out := map[wire.Class][]wire.Class{}
	for _, c := range wire.AllClasses() {
		if owner, ok := Owner(pools, c); ok {
			out[owner] = append(out[owner], c)
		}
	}
	return out
}

// Uncounted returns the classes no pool of pools serves, in wire.AllClasses
// order: their tasks wait until a pool that serves them is added.
func Uncounted(pools []Pool) []wire.Class {
	var out []wire.Class
	for _, c := range wire.AllClasses() {
		if _, ok := Owner(pools, c); !ok {
			out = append(out, c)
		}
	}
	return out
}

// TriggerName is the name of the trigger that reads the consumer of class c
// and priority p, which is also its identifier in the scaling formula:
// letters, digits and one underscore ("cuda16_high").
func TriggerName(c wire.Class, p wire.Priority) string {
	return string(c) + "_" + string(p)
}

// Plan is what the generator computed for the k8s folder.
type Plan struct {
	// Overlays are the overlays it was made for.
	Overlays []Overlay
	// Pools are every pool some overlay deploys, smallest first.
	Pools []Pool
	// Counts is the classes each pool counts (by pool name), the same in
	// every overlay that deploys it.
	Counts map[string][]wire.Class
	// OverlayPools are each overlay's pools, by overlay folder, smallest
	// first.
	OverlayPools map[string][]Pool
}

// NewPlan reads overlays under root (the k8s folder) and decides which
// pool counts which classes. A pool deployed by two overlays must count the
// same classes in both, since its patch is shared; when it does not, the
// overlays need pools of their own.
func NewPlan(root string, overlays []Overlay) (*Plan, error) {
	plan := &Plan{Overlays: overlays, Counts: map[string][]wire.Class{}, OverlayPools: map[string][]Pool{}}
	countedIn, dirs := map[string]string{}, map[string]string{}
	for _, o := range overlays {
		pools, err := ReadPools(root, o.Dir)
		if err != nil {
			return nil, err
		}
		if len(pools) == 0 {
			return nil, fmt.Errorf("backlog: %s deploys no node pool", o.Dir)
		}
		slices.SortFunc(pools, byTierThenName)
		plan.OverlayPools[o.Dir] = pools
		counts := Counts(pools)
		for _, p := range pools {
			classes := counts[p.Class]
			prev, seen := plan.Counts[p.Name]
			if seen && dirs[p.Name] != p.Dir {
				return nil, fmt.Errorf("backlog: two pools are named %s: %s and %s", p.Name, dirs[p.Name], p.Dir)
			}
			if !seen {
				dirs[p.Name] = p.Dir
				plan.Counts[p.Name] = classes
				countedIn[p.Name] = o.Dir
				plan.Pools = append(plan.Pools, p)
				continue
			}
			if !slices.Equal(prev, classes) {
				return nil, fmt.Errorf("backlog: pool %s counts %v in %s but %v in %s: its patch is shared, give one of the overlays a pool of its own",
					p.Name, prev, countedIn[p.Name], classes, o.Dir)
			}
		}
	}
	slices.SortFunc(plan.Pools, byTierThenName)
	return plan, nil
}

// byTierThenName orders pools smallest first.
func byTierThenName(a, b Pool) int {
	return cmp.Or(cmp.Compare(a.Tier.GiB, b.Tier.GiB), strings.Compare(a.Name, b.Name))
}
