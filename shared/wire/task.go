package wire

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Task is one unit of work on the TASKS stream: a contiguous range of a
// job's frames with everything a node needs to render them.
type Task struct {
	// ID is JobID + frame range: "<job>-f000004-000007". Deterministic.
	ID    string `json:"id"`
	JobID string `json:"job_id"`
	Kind  string `json:"kind"`
	// Attempt counts runs ordered by the coordinator, from 1. A redelivery
	// of the same message (node lost) keeps its Attempt.
	Attempt     int    `json:"attempt"`
	Model       string `json:"model"`
	ModelFamily string `json:"model_family"`
	Precision   string `json:"precision"`
	// Backend is cpu, cuda or empty for either.
	Backend  string   `json:"backend,omitempty"`
	Class    Class    `json:"class"`
	Priority Priority `json:"priority"`
	// VRAMBytes is the estimated peak memory for rendering one frame at a time.
	VRAMBytes int64   `json:"vram_bytes"`
	Width     int     `json:"width"`
	Height    int     `json:"height"`
	Steps     int     `json:"steps"`
	CFGScale  float64 `json:"cfg_scale"`
	Sampler   string  `json:"sampler"`
	Schedule  string  `json:"schedule"`
	ClipSkip  int     `json:"clip_skip,omitempty"`
	// Image inputs (input keys in S3) shared by every frame; see JobSpec.
	InitImage string   `json:"init_image,omitempty"`
	Mask      string   `json:"mask,omitempty"`
	Outpaint  *Padding `json:"outpaint,omitempty"`
	Strength  float64  `json:"strength,omitempty"`
	Frames    []Frame  `json:"frames"`
	// Assemble is set on the task of kind TaskKindAssemble, which has no frames.
	Assemble *Assembly `json:"assemble,omitempty"`
	// ExcludeNodes lists nodes this task already failed on; such a node
	// should leave it to others (nak with a delay) unless it has been
	// delivered many times, so a one-node farm still gets its retries.
	ExcludeNodes []string `json:"exclude_nodes,omitempty"`
	// PublishedAt is when the coordinator published this attempt (dispatch
	// latency is measured from it).
	PublishedAt time.Time `json:"published_at"`
}

// Frame is one image of a task.
type Frame struct {
	// Index is the frame's index in the job, from 0.
	Index          int    `json:"index"`
	Prompt         string `json:"prompt"`
	NegativePrompt string `json:"negative_prompt,omitempty"`
	Seed           int64  `json:"seed"`
	// Key is the S3 key the frame must be written to.
	Key string `json:"key"`
	// CFGScale, when set, replaces the task's (keyframes may set their own).
	CFGScale *float64 `json:"cfg_scale,omitempty"`
	// Blend makes the frame an animation in-between (nil on a keyframe).
	Blend *Blend `json:"blend,omitempty"`
}

// MsgID is the Nats-Msg-Id of this attempt: the task id for the first, so a
// re-publish is a no-op; "<id>.a<N>" for a retry, which must not be dropped.
func (t *Task) MsgID() string {
	if t.Attempt <= 1 {
		return t.ID
	}
	return t.ID + ".a" + strconv.Itoa(t.Attempt)
}

// Subject is the TASKS subject this task is published on.
func (t *Task) Subject() string { return TaskSubject(t.Class, t.Priority, t.JobID) }

// FailureKind is the kind of work a node failure is counted against: a node
// that keeps failing one kind is excluded from that kind only.
func (t *Task) FailureKind() string { return FailureKind(t.Kind, t.Model) }

// FailureKind names a kind of work for exclusion: "<job kind>.<model>".
func FailureKind(kind, model string) string { return kind + "." + model }

// Excludes reports whether node is in ExcludeNodes.
func (t *Task) Excludes(node string) bool {
	for _, n := range t.ExcludeNodes {
		if n == node {
			return true
		}
	}
	return false
}

// TaskID is the id of the task of job covering frames first..last.
func TaskID(job string, first, last int) string {
	return fmt.Sprintf("%s-f%0*d-%0*d", job, FrameIndexDigits, first, FrameIndexDigits, last)
}

// ParseTaskID splits a task id into job id and frame range.
func ParseTaskID(id string) (job string, first, last int, err error) {
	i := strings.LastIndex(id, "-f")
	if i <= 0 {
		return "", 0, 0, fmt.Errorf("wire: task id %q: no frame range", id)
	}
	a, b, ok := strings.Cut(id[i+2:], "-")
	if !ok {
		return "", 0, 0, fmt.Errorf("wire: task id %q: no frame range", id)
	}
	first, err1 := strconv.Atoi(a)
	last, err2 := strconv.Atoi(b)
	if err1 != nil || err2 != nil || first < 0 || last < first {
		return "", 0, 0, fmt.Errorf("wire: task id %q: bad frame range", id)
	}
	return id[:i], first, last, nil
}

// FrameAt returns frame index of a normalized, valid spec. In a batch the
// prompt is index / images per prompt and the seed index % images per
// prompt; in an animation see animationFrame.
func (s *JobSpec) FrameAt(job string, index int) Frame {
	if s.Kind == KindAnimation {
		return s.animationFrame(job, index)
	}
	ipp := s.ImagesPerPrompt
	return Frame{
		Index:          index,
		Prompt:         s.Prompts[index/ipp],
		NegativePrompt: s.NegativePrompt,
		Seed:           s.Seeds.At(index % ipp),
		Key:            FrameKey(job, index),
	}
}
