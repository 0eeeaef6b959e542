// Package comfy serves ComfyUI's HTTP and websocket API on the coordinator,
// so that ComfyUI clients drive the farm: a workflow in API format is
// checked the way ComfyUI checks it (the same error shapes) and becomes one
// batch job; its progress streams over /ws as ComfyUI's status, executing,
// progress and executed messages; its images are served by /view and
// listed in /history.
//
// It must never reach into etcd, JetStream or S3 itself, nor render:
// everything goes through Farm, which the coordinator implements.
package comfy

import (
	"context"
	"errors"
	"io"

	"github.com/latentfarm/latentfarm/shared/wire"
)

// Farm is what the ComfyUI API needs from the farm.
type Farm interface {
	// Leading reports whether this coordinator leads; a follower has no jobs.
	Leading() bool
	// Submit validates, stores and starts a job; a spec with problems
	// returns wire.FieldErrors.
	Submit(ctx context.Context, spec wire.JobSpec) (wire.JobStatus, error)
	// Job returns one job (ErrNotFound when unknown).
	Job(ctx context.Context, id string) (wire.JobStatus, error)
	// Jobs lists every job the leader knows, in no particular order.
	Jobs(ctx context.Context) ([]wire.JobStatus, error)
	// Cancel cancels a job that has not finished.
	Cancel(ctx context.Context, id string) error
	// Follow streams a job's events (a status first, then status changes
	// and node progress) until its end event, or until ctx ends or the
	// coordinator stops leading; then the channel closes.
	Follow(ctx context.Context, id string) (<-chan wire.JobEvent, error)
	// Manifest reads a finished job's manifest.
	Manifest(ctx context.Context, id string) (wire.Manifest, error)
	// OpenFrame opens frame index of a job as a PNG (ErrNotFound when the
	// frame does not exist); the caller closes it.
	OpenFrame(ctx context.Context, id string, index int) (io.ReadCloser, int64, error)
	// PutInput stores an image input (PNG or JPEG) under its content address.
	PutInput(ctx context.Context, data []byte) (wire.InputRef, error)
	// OpenInput opens a stored input by its key (ErrNotFound when absent).
	OpenInput(ctx context.Context, key string) (io.ReadCloser, int64, error)
	// PutJobFile stores a small file beside a job's frames (wire.OutputKey).
	PutJobFile(ctx context.Context, id, name string, data []byte) error
	// ReadJobFile reads a file stored by PutJobFile (ErrNotFound when absent).
	ReadJobFile(ctx context.Context, id, name string) ([]byte, error)
	// Nodes lists the live nodes.
	Nodes(ctx context.Context) ([]wire.NodeInfo, error)
	// Models lists the model names the nodes have or the model store holds.
	Models(ctx context.Context) ([]string, error)
}

// ErrNotFound is what Farm returns, wrapped, for a job, frame or file that
// does not exist.
var ErrNotFound = errors.New("comfy: not found")
