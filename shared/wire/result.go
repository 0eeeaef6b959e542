package wire

import "time"

// Result is what a node publishes on the RESULTS stream when it finishes or
// gives up a task. A successful result is published only after every frame
// is in S3.
type Result struct {
	TaskID  string `json:"task_id"`
	JobID   string `json:"job_id"`
	NodeID  string `json:"node_id"`
	Attempt int    `json:"attempt"`
	// Delivery is JetStream's delivery count of the task message.
	Delivery int `json:"delivery,omitempty"`
	// Frames lists the frames written (all of them on success).
	Frames []FrameResult `json:"frames,omitempty"`
	// Steps is how many denoising steps each frame ran: the spec's, or
	// fewer for an init image below strength 1.
	Steps int `json:"steps,omitempty"`
	// Outputs are the files an assemble task wrote, Notes what it could
	// not make and why (e.g. no MP4 without ffmpeg).
	Outputs    []OutputFile `json:"outputs,omitempty"`
	Notes      []string     `json:"notes,omitempty"`
	StartedAt  time.Time    `json:"started_at"`
	FinishedAt time.Time    `json:"finished_at"`
	Timings    Timings      `json:"timings"`
	// GPUSeconds is device time used (CPU seconds on a CPU node).
	GPUSeconds float64 `json:"gpu_seconds"`
	// GPU names the device that rendered (e.g. "NVIDIA H100 80GB HBM3" or "cpu").
	GPU string `json:"gpu,omitempty"`
	// Price is what the node costs, when its operator declared it.
	Price *Price `json:"price,omitempty"`
	// Error is set when the task failed; Frames may then list frames that
	// were written before the failure.
	Error *Error `json:"error,omitempty"`
	// Retryable tells the coordinator whether running it again may help; it
	// defaults to Error.Code.Retryable() when the node leaves it nil.
	Retryable *bool `json:"retryable,omitempty"`
}

// OK reports whether the task succeeded.
func (r *Result) OK() bool { return r.Error == nil }

// CanRetry reports whether a failed result may be retried.
func (r *Result) CanRetry() bool {
	if r.Error == nil {
		return false
	}
	if r.Retryable != nil {
		return *r.Retryable
	}
	return r.Error.Code.Retryable()
}

// FrameResult is one frame a node wrote.
type FrameResult struct {
	Index int    `json:"index"`
	Seed  int64  `json:"seed"`
	Key   string `json:"key"`
	Bytes int64  `json:"bytes,omitempty"`
	// RenderMS is the time spent on this frame, upload included.
	RenderMS int64 `json:"render_ms"`
	// GPUSeconds is the device time of this frame's render (no upload).
	GPUSeconds float64 `json:"gpu_seconds,omitempty"`
}

// Price is a node's declared cost of one hour, in its operator's currency.
type Price struct {
	PerHour  float64 `json:"per_hour"`
	Currency string  `json:"currency"`
}

// Cost is what seconds of the node's time cost.
func (p *Price) Cost(seconds float64) float64 {
	if p == nil {
		return 0
	}
	return seconds * p.PerHour / 3600
}

// Timings splits a task's wall time, in milliseconds.
type Timings struct {
	QueueMS   int64 `json:"queue_ms"`  // published to started
	LoadMS    int64 `json:"load_ms"`   // model fetch and load
	EncodeMS  int64 `json:"encode_ms"` // text encoding
	DenoiseMS int64 `json:"denoise_ms"`
	DecodeMS  int64 `json:"decode_ms"`
	UploadMS  int64 `json:"upload_ms"`
	TotalMS   int64 `json:"total_ms"`
}

// Progress stages.
const (
	StageStarted = "started" // the node took the task
	StageLoading = "loading" // loading or fetching the model takes a while
	StageStep    = "step"    // a denoising step finished (a few a second at most)
	StageFrame   = "frame"   // a frame is in S3 (Step and Steps: its steps); quick frames at most a few a second
	StageDone    = "done"    // every frame of the task is in (Step and Steps: each one's, Result.Steps); the coordinator says this one
)

// Progress is a best-effort event a node publishes on ProgressSubject(job),
// and the coordinator forwards to the job's listeners.
type Progress struct {
	JobID  string    `json:"job_id"`
	TaskID string    `json:"task_id"`
	NodeID string    `json:"node_id"`
	Stage  string    `json:"stage"`
	Frame  int       `json:"frame"`
	Step   int       `json:"step,omitempty"`
	Steps  int       `json:"steps,omitempty"`
	Time   time.Time `json:"time"`
	// Preview is an optional small PNG of the current latent.
	Preview []byte `json:"preview,omitempty"`
}

// FrameRange is the frames p speaks for: its frame, or for "done" every
// frame of its task (ok is false for a task without frames: an
// animation's assembly).
func (p *Progress) FrameRange() (first, last int, ok bool) {
	if p.Stage != StageDone {
		return p.Frame, p.Frame, true
	}
	_, first, last, err := ParseTaskID(p.TaskID)
	return first, last, err == nil
}

// Cancel is published on CancelSubject(job) when a job is cancelled; nodes
// rendering its tasks stop and terminate them.
type Cancel struct {
	JobID  string `json:"job_id"`
	Reason string `json:"reason,omitempty"`
}

// NodeControl is a control message sent to one node.
type NodeControl struct {
	// Action is "drain" (stop pulling, finish the current task).
	Action string `json:"action"`
}

// Exclusion is stored at ExclusionKey(node, kind) under a lease that expires
// when the exclusion ends: the node should not run tasks of that kind.
type Exclusion struct {
	NodeID   string    `json:"node_id"`
	Kind     string    `json:"kind"`
	Failures int       `json:"failures"`
	Reason   string    `json:"reason"`
	Since    time.Time `json:"since"`
	Until    time.Time `json:"until"`
}
