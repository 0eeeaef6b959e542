package wire

import (
	"fmt"
	"strconv"
	"strings"
)

// Backends. BackendAny (empty) in a spec or task means either.
const (
	BackendAny  = ""
	BackendCPU  = "cpu"
	BackendCUDA = "cuda"
)

// Priority orders work: high before normal before low, with a fairness rule
// (PriorityOrder) so that low priority work is never starved forever.
type Priority string

// Priorities.
const (
	PriorityHigh   Priority = "high"
	PriorityNormal Priority = "normal"
	PriorityLow    Priority = "low"
)

// Priorities lists every priority, highest first.
var Priorities = []Priority{PriorityHigh, PriorityNormal, PriorityLow}

// Valid reports whether p is a known priority.
func (p Priority) Valid() bool {
	return p == PriorityHigh || p == PriorityNormal || p == PriorityLow
}

// fairCycle is the weighted round robin behind PriorityOrder: out of every 10
// pulls, high is tried first 6 times, normal 3 times and low once. A node
// that always found high work first would starve low work forever; with this
// cycle low work gets at least a tenth of a busy class.
var fairCycle = [10]Priority{
	PriorityHigh, PriorityNormal, PriorityHigh, PriorityHigh, PriorityNormal,
	PriorityHigh, PriorityLow, PriorityHigh, PriorityNormal, PriorityHigh,
}

// PriorityOrder returns the order in which a node tries the priorities on its
// tick-th pull: the cycle's pick first, then the others highest first.
func PriorityOrder(tick uint64) []Priority {
	first := fairCycle[tick%uint64(len(fairCycle))]
	out := []Priority{first}
	for _, p := range Priorities {
		if p != first {
			out = append(out, p)
		}
	}
	return out
}

// Tier is a memory size class: tasks that need at most TaskMaxBytes, served
// by nodes with at least that much usable memory.
type Tier struct {
	// GiB is the nominal size of the tier's cards ("24" for 24 GB cards).
	GiB int
}

// Tiers lists the memory tiers, smallest first.
var Tiers = []Tier{{4}, {8}, {16}, {24}, {48}, {80}}

// tierHeadroom is the share of a nominal size a task may use: a "24 GB" card
// reports about 23.99 GiB and needs room for the runtime's own allocations.
const tierHeadroom = 0.9

// TaskMaxBytes is the largest VRAM estimate a task of this tier may have, and
// the least usable memory a node needs to serve the tier.
func (t Tier) TaskMaxBytes() int64 {
	return int64(float64(t.GiB) * tierHeadroom * (1 << 30))
}

// Class names a pool of nodes and a pull consumer per priority. It is the
// backend requirement and the memory tier: "vram<N>" (either backend),
// "cuda<N>" (CUDA only) or "cpu<N>" (CPU only), N a tier's GiB.
type Class string

// classPrefix maps a task backend to its class name prefix.
func classPrefix(backend string) string {
	switch backend {
	case BackendCPU:
		return "cpu"
	case BackendCUDA:
		return "cuda"
	}
	return "vram"
}

// ClassFor returns the class of a task that needs estimate bytes and backend
// (BackendAny for either): the smallest tier it fits. ok is false when no
// tier is large enough.
func ClassFor(backend string, estimate int64) (Class, bool) {
	for _, t := range Tiers {
		if estimate <= t.TaskMaxBytes() {
			return Class(classPrefix(backend) + strconv.Itoa(t.GiB)), true
		}
	}
	return "", false
}

// ParseClass splits a class into its backend (BackendAny for "vram") and tier.
func ParseClass(c Class) (backend string, tier Tier, err error) {
	s := string(c)
	for _, b := range []string{BackendCPU, BackendCUDA, BackendAny} {
		p := classPrefix(b)
		if rest, ok := strings.CutPrefix(s, p); ok {
			n, err := strconv.Atoi(rest)
			if err != nil {
				break
			}
			for _, t := range Tiers {
				if t.GiB == n {
					return b, t, nil
				}
			}
			break
		}
	}
	return "", Tier{}, fmt.Errorf("wire: unknown class %q", c)
}

// AllClasses lists every class, by tier then backend requirement.
func AllClasses() []Class {
	var out []Class
	for _, t := range Tiers {
		for _, b := range []string{BackendAny, BackendCUDA, BackendCPU} {
			out = append(out, Class(classPrefix(b)+strconv.Itoa(t.GiB)))
		}
	}
	return out
}

// ClassesForNode returns the classes a node of backend (cpu or cuda) with
// usable bytes of memory (total VRAM of its card; for a CPU node the memory
// it gives to rendering) serves: for every tier that fits, the class pinned
// to its backend and the either-backend class. Larger tiers come first
// (small tasks can go to small nodes; large tasks only to large ones), and
// within a tier the pinned class comes first.
func ClassesForNode(backend string, usable int64) []Class {
	var out []Class
	for i := len(Tiers) - 1; i >= 0; i-- {
		t := Tiers[i]
		if usable < t.TaskMaxBytes() {
			continue
		}
		out = append(out, Class(classPrefix(backend)+strconv.Itoa(t.GiB)), Class(classPrefix(BackendAny)+strconv.Itoa(t.GiB)))
	}
	return out
}

// CanServe reports whether a node of backend with usable bytes serves class
// c, and if not, why.
func CanServe(backend string, usable int64, c Class) (bool, string) {
	cb, tier, err := ParseClass(c)
	if err != nil {
		return false, err.Error()
	}
	if cb != BackendAny && cb != backend {
		return false, fmt.Sprintf("backend: class %s needs %s, node is %s", c, cb, backend)
	}
	if usable < tier.TaskMaxBytes() {
		return false, fmt.Sprintf("vram: class %s needs %s, node has %s", c, FormatBytes(tier.TaskMaxBytes()), FormatBytes(usable))
	}
	return true, ""
}

// Pull is one (class, priority) consumer a node tries.
type Pull struct {
	Class    Class
	Priority Priority
}

// Consumer is the durable consumer name of p.
func (p Pull) Consumer() string { return TaskConsumer(p.Class, p.Priority) }

// PullPlan is the order in which a node serving classes tries consumers on
// its tick-th pull: priorities by PriorityOrder (outer), classes in the given
// order (inner).
func PullPlan(classes []Class, tick uint64) []Pull {
	var out []Pull
	for _, p := range PriorityOrder(tick) {
		for _, c := range classes {
			out = append(out, Pull{Class: c, Priority: p})
		}
	}
	return out
}

// FormatBytes renders n bytes in GiB or MiB with one decimal.
func FormatBytes(n int64) string {
	if n >= 1<<30 {
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	}
	return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
}
