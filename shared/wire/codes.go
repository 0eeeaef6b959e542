package wire

// Code is a stable error code that crosses the wire (API errors and task
// results). Codes are never renamed; new ones are only added.
type Code string

// API error codes.
const (
	CodeInvalidJob   Code = "invalid_job"   // the job spec failed validation; Fields lists why
	CodeBadRequest   Code = "bad_request"   // the body could not be parsed
	CodeUnauthorized Code = "unauthorized"  // missing or wrong bearer token
	CodeNotFound     Code = "not_found"     // no such job or path
	CodeConflict     Code = "conflict"      // the request does not fit the job's state
	CodeNotLeader    Code = "not_leader"    // this coordinator is a follower; retry at the leader
	CodeUnavailable  Code = "unavailable"   // a backing system (etcd, NATS, S3) failed
	CodeInternal     Code = "internal"      // a bug
	CodeTooLarge     Code = "too_large"     // the request body is over the limit
	CodeNotSupported Code = "not_supported" // a feature the coordinator does not have yet
)

// Task error codes, set by nodes in Result.Error.
const (
	CodeModelNotFound   Code = "model_not_found"   // neither the local dir nor the model store has it
	CodeModelLoadFailed Code = "model_load_failed" // the checkpoint is corrupt or unsupported
	CodeOutOfMemory     Code = "out_of_memory"     // the render did not fit
	CodeRenderFailed    Code = "render_failed"     // the engine failed
	CodeUploadFailed    Code = "upload_failed"     // writing a frame to S3 failed
	CodeInvalidTask     Code = "invalid_task"      // the node cannot decode or run this task at all
	CodeCancelled       Code = "cancelled"         // the job was cancelled while the task ran
	CodeNodeDraining    Code = "node_draining"     // the node stopped before finishing (task returned)
	CodeTimeout         Code = "timeout"           // the render took longer than allowed
	CodeTaskFailed      Code = "task_failed"       // retries exhausted (set by the coordinator)
)

// Retryable reports whether a task that failed with code c may succeed when
// run again, possibly on another node.
func (c Code) Retryable() bool {
	switch c {
	case CodeInvalidTask, CodeCancelled, CodeTaskFailed:
		return false
	}
	return true
}

// Error is an error that crosses the wire: a stable code and a message.
type Error struct {
	Code    Code   `json:"code"`
	Message string `json:"message"`
}

// Error implements error.
func (e *Error) Error() string { return string(e.Code) + ": " + e.Message }
