package wire

import (
	"fmt"
	"time"
)

// Job states.
const (
	JobQueued    = "queued"    // accepted, no task finished yet
	JobRunning   = "running"   // some task finished
	JobDone      = "done"      // every frame rendered, manifest written
	JobFailed    = "failed"    // finished with failed frames (manifest lists them)
	JobCancelled = "cancelled" // cancelled by a user
)

// JobFinished reports whether state is terminal.
func JobFinished(state string) bool {
	return state == JobDone || state == JobFailed || state == JobCancelled
}

// Task states.
const (
	TaskQueued    = "queued"     // published, waiting for a node
	TaskRunning   = "running"    // a node reported it started
	TaskRetryWait = "retry_wait" // failed; republished after NotBefore
	TaskDone      = "done"
	TaskFailed    = "failed"
	TaskCancelled = "cancelled"
)

// JobRecord is a job as stored at JobKey(id). Task states live in
// TaskRecords; a task without a record is queued.
type JobRecord struct {
	ID    string  `json:"id"`
	Spec  JobSpec `json:"spec"`
	State string  `json:"state"`
	// Tasks is how many tasks the spec splits into; Published is how many of
	// them (in order) have been acknowledged by JetStream.
	Tasks       int        `json:"tasks"`
	Published   int        `json:"published"`
	Class       Class      `json:"class"`
	VRAMBytes   int64      `json:"vram_bytes"`
	CreatedAt   time.Time  `json:"created_at"`
	FinishedAt  *time.Time `json:"finished_at,omitempty"`
	Error       string     `json:"error,omitempty"`
	ManifestKey string     `json:"manifest_key,omitempty"`
	// Counts as of the last write; recomputed from TaskRecords on load.
	FramesDone   int     `json:"frames_done"`
	FramesFailed int     `json:"frames_failed"`
	TasksDone    int     `json:"tasks_done"`
	TasksFailed  int     `json:"tasks_failed"`
	GPUSeconds   float64 `json:"gpu_seconds"`
	// Cost is the GPU-seconds priced by the nodes that declared a price.
	Cost Cost `json:"cost,omitzero"`
	// LateResults counts runs that reported a task rendered after the job
	// had ended: the task was rendered a second time. Exactly-once delivery
	// keeps it 0.
	LateResults int `json:"late_results,omitempty"`
	// Swept is set once a cancelled job's frames that its manifest does not
	// list (tasks that were rendering at the cancel) are deleted.
	Swept bool `json:"swept,omitempty"`
}

// Cost sums prices of device time. Nodes of one farm should share a
// currency; a job that ran on nodes of different currencies says "mixed".
type Cost struct {
	Amount   float64 `json:"amount"`
	Currency string  `json:"currency,omitempty"`
}

// CurrencyMixed is the currency of a sum over several currencies.
const CurrencyMixed = "mixed"

// Add adds amount in currency.
func (c *Cost) Add(amount float64, currency string) {
	switch {
	case c.Currency == "":
		c.Currency = currency
	case currency != "" && c.Currency != currency:
		c.Currency = CurrencyMixed
	}
	c.Amount += amount
}

// String renders the cost, e.g. "0.0123 USD"; empty when nothing was priced.
func (c Cost) String() string {
	if c.Currency == "" {
		return ""
	}
	return fmt.Sprintf("%.4f %s", c.Amount, c.Currency)
}

// TaskRecord is the state of a task with more to say than done or queued
// (failed, waiting for a retry, retried, rendered twice, an animation's
// assembly), kept in its ChunkRecord.
type TaskRecord struct {
	ID      string `json:"id"`
	State   string `json:"state"`
	Attempt int    `json:"attempt"`
	// NotBefore is when a task in retry_wait is republished.
	NotBefore *time.Time `json:"not_before,omitempty"`
	// Node is the node that finished it (or last ran it).
	Node string `json:"node,omitempty"`
	// FailedNodes counts failures per node.
	FailedNodes map[string]int `json:"failed_nodes,omitempty"`
	Failures    int            `json:"failures,omitempty"`
	Error       *Error         `json:"error,omitempty"`
	Result      *Result        `json:"result,omitempty"`
	// PriorRuns counts the runs of earlier attempts (their deliveries), so
	// that Run() numbers every run of the task.
	PriorRuns int `json:"prior_runs,omitempty"`
	// Renders counts the distinct runs that reported the task rendered.
	Renders int `json:"renders,omitempty"`
}

// Run numbers the hand-out of the task that r reports, over all its
// attempts: 1 for the first; a redelivery (its node died, or a node passed
// it on) or a retry after a failure counts on from there.
func (tr *TaskRecord) Run(r *Result) int { return tr.PriorRuns + max(r.Delivery, 1) }

// JobStatus is a job as the API shows it.
type JobStatus struct {
	ID           string     `json:"id"`
	Name         string     `json:"name,omitempty"`
	State        string     `json:"state"`
	Model        string     `json:"model"`
	Priority     Priority   `json:"priority"`
	Class        Class      `json:"class"`
	VRAMBytes    int64      `json:"vram_bytes"`
	FramesTotal  int        `json:"frames_total"`
	FramesDone   int        `json:"frames_done"`
	FramesFailed int        `json:"frames_failed"`
	TasksTotal   int        `json:"tasks_total"`
	TasksDone    int        `json:"tasks_done"`
	TasksFailed  int        `json:"tasks_failed"`
	TasksRunning int        `json:"tasks_running"`
	TasksWaiting int        `json:"tasks_waiting"`
	GPUSeconds   float64    `json:"gpu_seconds"`
	Cost         Cost       `json:"cost,omitzero"`
	CreatedAt    time.Time  `json:"created_at"`
	FinishedAt   *time.Time `json:"finished_at,omitempty"`
	Error        string     `json:"error,omitempty"`
	ManifestKey  string     `json:"manifest_key,omitempty"`
	// LateResults: see JobRecord.LateResults.
	LateResults int `json:"late_results,omitempty"`
	// Spec, Tasks and Waiting are filled in the single-job view only.
	Spec  *JobSpec     `json:"spec,omitempty"`
	Tasks []TaskStatus `json:"tasks,omitempty"`
	// Waiting says why waiting tasks wait, one line per reason.
	Waiting []string `json:"waiting,omitempty"`
}

// TaskStatus is a task as the API shows it.
type TaskStatus struct {
	ID          string         `json:"id"`
	State       string         `json:"state"`
	Attempt     int            `json:"attempt"`
	Frames      [2]int         `json:"frames"` // first and last index
	Node        string         `json:"node,omitempty"`
	FailedNodes map[string]int `json:"failed_nodes,omitempty"`
	Error       *Error         `json:"error,omitempty"`
	// Why is set on a waiting task: what keeps it from running.
	Why string `json:"why,omitempty"`
}

// JobEvent is one element of the /v1/jobs/{id}/events stream.
type JobEvent struct {
	// Type is "status" (counts changed or first event), "progress" (a node's
	// step progress) or "end" (the job finished; the stream closes).
	Type     string     `json:"type"`
	Job      *JobStatus `json:"job,omitempty"`
	Progress *Progress  `json:"progress,omitempty"`
	Time     time.Time  `json:"time"`
}

// Job event types.
const (
	EventStatus   = "status"
	EventProgress = "progress"
	EventEnd      = "end"
)

// SubmitResponse is the body of a successful POST /v1/jobs.
type SubmitResponse struct {
	Job JobStatus `json:"job"`
}

// DeleteResponse is the body of DELETE /v1/jobs/{id}: the job deleted and
// how many of its objects were removed from S3.
type DeleteResponse struct {
	Job     string `json:"job"`
	Objects int    `json:"objects"`
}

// JobList is the body of GET /v1/jobs.
type JobList struct {
	Jobs []JobStatus `json:"jobs"`
}

// NodeList is the body of GET /v1/nodes.
type NodeList struct {
	Nodes []NodeInfo `json:"nodes"`
}

// FrameURL is one downloadable frame of GET /v1/jobs/{id}/files.
type FrameURL struct {
	Index int    `json:"index,omitempty"`
	Key   string `json:"key"`
	URL   string `json:"url"`
}

// MaxFileWindow bounds the frames of one GET /v1/jobs/{id}/files?from=&to=.
const MaxFileWindow = 1000

// FileList is the body of GET /v1/jobs/{id}/files: presigned URLs of the
// manifest and every frame.
type FileList struct {
	Manifest FrameURL   `json:"manifest"`
	Frames   []FrameURL `json:"frames"`
	// Outputs are an animation's assembled files (GIF, MP4).
	Outputs []FrameURL `json:"outputs,omitempty"`
	// Expires is when the URLs stop working.
	Expires time.Time `json:"expires"`
}

// APIError is the body of every API error response.
type APIError struct {
	Error APIErrorBody `json:"error"`
}

// APIErrorBody is the code, message and field errors of an API error.
type APIErrorBody struct {
	Code    Code        `json:"code"`
	Message string      `json:"message"`
	Fields  FieldErrors `json:"fields,omitempty"`
	// Leader is the leader's URL on a not_leader error, when known.
	Leader string `json:"leader,omitempty"`
}

// Manifest is written to ManifestKey(job) when a job finishes. Its frames
// list every rendered frame exactly once.
type Manifest struct {
	JobID       string    `json:"job_id"`
	State       string    `json:"state"`
	Spec        JobSpec   `json:"spec"`
	CreatedAt   time.Time `json:"created_at"`
	FinishedAt  time.Time `json:"finished_at"`
	WallSeconds float64   `json:"wall_seconds"`
	GPUSeconds  float64   `json:"gpu_seconds"`
	// Cost is the job's priced device time, CostPerImage that over the
	// rendered frames.
	Cost         Cost    `json:"cost,omitzero"`
	CostPerImage float64 `json:"cost_per_image,omitempty"`
	FramesTotal  int     `json:"frames_total"`
	// Frames, Failed and Tasks are in the shards (JSON Lines of
	// ManifestLine, see EachManifestLine); the object at ManifestKey holds
	// the rest and names the shards. ReadManifest fills them in.
	Frames []ManifestFrame `json:"frames,omitempty"`
	Failed []FailedFrame   `json:"failed,omitempty"`
	Shards []string        `json:"shards,omitempty"`
	// Rerendered counts, for each task rendered more than once, its
	// renders; the shards' task lines say 1.
	Rerendered map[string]int `json:"rerendered,omitempty"`
	// Nodes counts frames per node.
	Nodes map[string]int `json:"nodes"`
	// Outputs are the files assembled from the frames (an animation's GIF
	// and MP4); Notes say what was not made and why.
	Outputs []OutputFile `json:"outputs,omitempty"`
	Notes   []string     `json:"notes,omitempty"`
	// Tasks records every task that ran to an end: the job's delivery
	// record once its task state has left etcd.
	Tasks []ManifestTask `json:"tasks,omitempty"`
}

// ManifestTask is one task of a finished job: where and how often it ran.
type ManifestTask struct {
	ID     string `json:"id"`
	State  string `json:"state"` // TaskDone or TaskFailed
	Frames [2]int `json:"frames"`
	Node   string `json:"node,omitempty"`
	// Attempt is the hand-out that ended the task (TaskRecord.Run),
	// counted over all its attempts: 1 when its first hand-out rendered it;
	// a task handed out again (its node died or failed, or a node passed it
	// on) shows 2 and up.
	Attempt int `json:"attempt"`
	// Renders counts the distinct runs that reported the task rendered:
	// exactly once is 1 (0 for a failed task).
	Renders     int            `json:"renders"`
	FailedNodes map[string]int `json:"failed_nodes,omitempty"`
	Error       *Error         `json:"error,omitempty"`
	StartedAt   time.Time      `json:"started_at,omitzero"`
	FinishedAt  time.Time      `json:"finished_at,omitzero"`
	Timings     Timings        `json:"timings,omitzero"`
}

// OutputFile is a file a task made besides frames.
type OutputFile struct {
	Name  string `json:"name"`
	Key   string `json:"key"`
	Bytes int64  `json:"bytes"`
}

// ManifestFrame is one rendered frame in a manifest.
type ManifestFrame struct {
	Index  int    `json:"index"`
	Key    string `json:"key"`
	Prompt string `json:"prompt"`
	Seed   int64  `json:"seed"`
	Node   string `json:"node"`
	GPU    string `json:"gpu,omitempty"`
	TaskID string `json:"task_id"`
	// Attempt is the run of its task that rendered the frame
	// (ManifestTask.Attempt).
	Attempt  int   `json:"attempt"`
	RenderMS int64 `json:"render_ms"`
	// GPUSeconds is the frame's render time on the device (older nodes: the
	// task's device time shared evenly by its frames), Cost that priced.
	GPUSeconds float64 `json:"gpu_seconds"`
	Cost       float64 `json:"cost,omitempty"`
}

// FailedFrame is a frame that was not rendered.
type FailedFrame struct {
	Index  int    `json:"index"`
	TaskID string `json:"task_id"`
	Error  Error  `json:"error"`
}
