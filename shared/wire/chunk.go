package wire

import (
	"encoding/binary"
	"math/bits"
)

// ChunkTasks is how many consecutive tasks (in plan order) one ChunkRecord
// holds: a job's etcd state is a key per ChunkTasks tasks, whatever its
// size.
const ChunkTasks = 4096

// ChunkRecord is the state of tasks n*ChunkTasks up to (n+1)*ChunkTasks-1
// of an active job, at ChunkKey(job, n). A task is done when its bit in
// Done is set, and queued when it has neither a bit nor a record in Tasks.
// The sums cover the chunk's done tasks, so that one write records a batch
// of results and their counts together.
type ChunkRecord struct {
	// Done has bit k%8 of byte k/8 set when the chunk's task k is done.
	Done []byte `json:"done,omitempty"`
	// Runs holds the RunID of each done task, 2 bytes per task, little
	// endian: a result of the same run seen again after a restart is not a
	// second render.
	Runs []byte `json:"runs,omitempty"`
	// Tasks are the records of tasks with more to say (see TaskRecord).
	Tasks []TaskRecord `json:"tasks,omitempty"`
	// Shards are the manifest shards (S3 keys) listing the results of the
	// chunk's done and failed tasks.
	Shards     []string `json:"shards,omitempty"`
	Frames     int      `json:"frames,omitempty"`
	GPUSeconds float64  `json:"gpu_seconds,omitempty"`
	Cost       Cost     `json:"cost,omitzero"`
	// Nodes counts frames rendered per node.
	Nodes map[string]int `json:"nodes,omitempty"`
}

// NewChunkRecord makes the empty record of a chunk of n tasks.
func NewChunkRecord(n int) ChunkRecord {
	return ChunkRecord{Done: make([]byte, (n+7)/8), Runs: make([]byte, 2*n)}
}

// IsDone reports whether task k of the chunk is done.
func (c *ChunkRecord) IsDone(k int) bool { return k/8 < len(c.Done) && c.Done[k/8]&(1<<(k%8)) != 0 }

// SetDone marks task k done by run.
func (c *ChunkRecord) SetDone(k int, run uint16) {
	c.Done[k/8] |= 1 << (k % 8)
	binary.LittleEndian.PutUint16(c.Runs[2*k:], run)
}

// Run is the RunID that rendered done task k.
func (c *ChunkRecord) Run(k int) uint16 {
	if 2*k+2 > len(c.Runs) {
		return 0
	}
	return binary.LittleEndian.Uint16(c.Runs[2*k:])
}

// DoneCount counts the done tasks.
func (c *ChunkRecord) DoneCount() int {
	n := 0
	for _, b := range c.Done {
		n += bits.OnesCount8(b)
	}
	return n
}

// RunID packs the hand-out a result reports, its attempt and delivery
// (each saturating at 255), into 16 bits: two results with one RunID are
// one run seen twice; different RunIDs are different runs.
func RunID(r *Result) uint16 {
	a := min(max(r.Attempt, 1), 255)
	d := min(max(r.Delivery, 1), 255)
	return uint16(a)<<8 | uint16(d)
}
