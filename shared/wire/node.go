package wire

import (
	"slices"
	"time"
)

// Node states.
const (
	NodeReady    = "ready"
	NodeBusy     = "busy"
	NodeDraining = "draining"
)

// NodeInfo is a node's entry at NodeKey(id), kept under the node's lease:
// when the node dies the entry vanishes.
type NodeInfo struct {
	ID      string `json:"id"`
	Host    string `json:"host"`
	Backend string `json:"backend"` // cpu or cuda
	GPUs    []GPU  `json:"gpus,omitempty"`
	// CPUCores and MemoryBytes describe the host.
	CPUCores    int   `json:"cpu_cores"`
	MemoryBytes int64 `json:"memory_bytes"`
	// UsableBytes is the memory a task may use: on a CUDA node the free VRAM
	// of its card when the node started, less a headroom (so a card shared
	// with another process joins a smaller tier); on a CPU node the
	// configured render budget.
	UsableBytes int64 `json:"usable_bytes"`
	// Classes are the task classes the node pulls (ClassesForNode).
	Classes      []Class           `json:"classes"`
	ModelsOnDisk []string          `json:"models_on_disk,omitempty"`
	ModelsLoaded []string          `json:"models_loaded,omitempty"`
	Labels       map[string]string `json:"labels,omitempty"`
	State        string            `json:"state"`
	CurrentTask  string            `json:"current_task,omitempty"`
	CurrentJob   string            `json:"current_job,omitempty"`
	// PricePerHour is the configured cost of the node, in Currency.
	PricePerHour float64 `json:"price_per_hour,omitempty"`
	Currency     string  `json:"currency,omitempty"`
	// Capabilities are optional tools the node has (CapabilityFFmpeg).
	Capabilities []string `json:"capabilities,omitempty"`
	// Renderer is RendererEngine or RendererLoadTest.
	Renderer  string    `json:"renderer,omitempty"`
	Version   string    `json:"version,omitempty"`
	StartedAt time.Time `json:"started_at"`
	UpdatedAt time.Time `json:"updated_at"`
	// TasksDone and TasksFailed count since the node started.
	TasksDone   int `json:"tasks_done"`
	TasksFailed int `json:"tasks_failed"`
}

// GPU is one device of a node.
type GPU struct {
	Index             int    `json:"index"`
	Name              string `json:"name"`
	ComputeCapability string `json:"compute_capability,omitempty"`
	TotalVRAM         int64  `json:"total_vram"`
	FreeVRAM          int64  `json:"free_vram"`
	// DriverVersion is the NVIDIA driver's, e.g. "550.54.15", when known.
	DriverVersion string `json:"driver_version,omitempty"`
}

// VRAM sums total and free memory over the node's GPUs.
func (n *NodeInfo) VRAM() (total, free int64) {
	for _, g := range n.GPUs {
		total += g.TotalVRAM
		free += g.FreeVRAM
	}
	return total, free
}

// Can reports whether the node advertises capability.
func (n *NodeInfo) Can(capability string) bool {
	for _, c := range n.Capabilities {
		if c == capability {
			return true
		}
	}
	return false
}

// Serves reports whether the node pulls class c.
func (n *NodeInfo) Serves(c Class) bool {
	for _, x := range n.Classes {
		if x == c {
			return true
		}
	}
	return false
}

// The renderers a node entry names.
const (
	RendererEngine = "engine"
	// RendererLoadTest spends a fixed time per image and renders any model
	// name: it stands in for GPUs in load tests.
	RendererLoadTest = "load-test"
)

// HasModel reports whether the node can render model without the model
// store: it has it on disk or loaded, or it is a load-test node.
func (n *NodeInfo) HasModel(model string) bool {
	return n.Renderer == RendererLoadTest || slices.Contains(n.ModelsOnDisk, model) || slices.Contains(n.ModelsLoaded, model)
}
