package wire

import (
	"fmt"
	"strconv"
	"strings"
)

// NATS streams and subjects.
//
// TASKS is a work-queue stream over "tasks.<class>.<priority>.<job>". Every
// (class, priority) pair has one durable pull consumer filtered on
// "tasks.<class>.<priority>.*": the filters never overlap (a work-queue stream
// requires that), the nodes of a class share it, and its pending count is the
// backlog of that class for an autoscaler. The job token lets the coordinator
// purge one job's pending tasks with a subject-filtered purge on cancel.
//
// RESULTS is a work-queue stream over "results.<job>" read by the leading
// coordinator through one durable consumer, so no result is lost while the
// coordinator restarts. Progress and cancel messages are plain subjects:
// nothing depends on them arriving.
const (
	TasksStream     = "TASKS"
	TasksSubjects   = "tasks.>"
	ResultsStream   = "RESULTS"
	ResultsSubjects = "results.>"
	// ResultsConsumer is the coordinator's durable consumer on RESULTS.
	ResultsConsumer = "coordinator"
	// ProgressAll matches every progress subject.
	ProgressAll = "progress.>"
	// CancelAll matches every cancel subject; nodes subscribe to it.
	CancelAll = "cancel.>"
	// NodeControlAll matches node control subjects (drain requests).
	NodeControlAll = "node.>"
	// WakeAll matches every wake subject (see WakeSubject).
	WakeAll = "wake.>"
)

// TaskSubject is the subject a task of class c and priority p for job is
// published on.
func TaskSubject(c Class, p Priority, job string) string {
	return "tasks." + string(c) + "." + string(p) + "." + job
}

// TaskFilter is the subject filter of the durable consumer for (c, p).
func TaskFilter(c Class, p Priority) string {
	return "tasks." + string(c) + "." + string(p) + ".*"
}

// ParseTaskSubject splits a TaskSubject into its class, priority and job.
func ParseTaskSubject(subject string) (c Class, p Priority, job string, ok bool) {
	parts := strings.Split(subject, ".")
	if len(parts) != 4 || parts[0] != "tasks" {
		return "", "", "", false
	}
	return Class(parts[1]), Priority(parts[2]), parts[3], true
}

// WakeSubject is where the coordinator publishes an empty message once
// tasks of class c and priority p are in the stream: idle nodes of the class
// wake at once instead of at their next poll, and busy ones learn which
// consumer has work again. One message per published batch, not a copy of
// every task.
func WakeSubject(c Class, p Priority) string { return "wake." + string(c) + "." + string(p) }

// WakeFilter matches the wake subjects of class c; a node subscribes to one
// per class it serves.
func WakeFilter(c Class) string { return "wake." + string(c) + ".*" }

// ParseWakeSubject splits a WakeSubject into its class and priority.
func ParseWakeSubject(subject string) (c Class, p Priority, ok bool) {
	parts := strings.Split(subject, ".")
	if len(parts) != 3 || parts[0] != "wake" {
		return "", "", false
	}
	return Class(parts[1]), Priority(parts[2]), true
}

// JobTasksFilter matches every pending task of job, whatever its class.
func JobTasksFilter(job string) string { return "tasks.*.*." + job }

// TaskConsumer is the durable name of the pull consumer for (c, p), shared by
// all nodes of that class.
func TaskConsumer(c Class, p Priority) string {
	return "tasks_" + string(c) + "_" + string(p)
}

// ResultSubject is the subject results of job are published on.
func ResultSubject(job string) string { return "results." + job }

// ProgressSubject is the subject step progress of job is published on.
func ProgressSubject(job string) string { return "progress." + job }

// CancelSubject is the subject the coordinator announces job's cancellation on.
func CancelSubject(job string) string { return "cancel." + job }

// NodeControlSubject is the subject a node listens on for control messages.
func NodeControlSubject(node string) string { return "node." + node }

// Task message headers.
const (
	// HeaderMsgID is JetStream's de-duplication header; it carries Task.MsgID().
	HeaderMsgID = "Nats-Msg-Id"
	// HeaderTaskID carries the task id on task and result messages.
	HeaderTaskID = "Farm-Task-Id"
)

// etcd keys. Every key lives under EtcdRoot.
const (
	EtcdRoot = "/latentfarm/"
	// NodesPrefix holds one NodeInfo per live node, under the node's lease.
	NodesPrefix = EtcdRoot + "nodes/"
	// JobsPrefix holds one JobRecord per job.
	JobsPrefix = EtcdRoot + "jobs/"
	// ChunksPrefix holds an active job's task state, one ChunkRecord per
	// ChunkTasks tasks: ChunksPrefix + job + "/" + chunk number.
	ChunksPrefix = EtcdRoot + "chunks/"
	// CancelledPrefix holds a key per cancelled job; nodes check it before
	// starting a task and may watch it.
	CancelledPrefix = EtcdRoot + "cancelled/"
	// ExclusionsPrefix holds Exclusion entries under a lease that expires
	// when the exclusion ends: ExclusionsPrefix + node + "/" + kind.
	ExclusionsPrefix = EtcdRoot + "exclusions/"
	// LeaderPrefix is the election prefix of the coordinators.
	LeaderPrefix = EtcdRoot + "leader/"
)

// NodeKey is the etcd key of node's entry.
func NodeKey(node string) string { return NodesPrefix + node }

// JobKey is the etcd key of job's record.
func JobKey(job string) string { return JobsPrefix + job }

// ChunkKey is the etcd key of chunk n of job's task state.
func ChunkKey(job string, n int) string { return fmt.Sprintf("%s%06d", JobChunksPrefix(job), n) }

// JobChunksPrefix is the prefix of every chunk record of job.
func JobChunksPrefix(job string) string { return ChunksPrefix + job + "/" }

// CancelledKey is the etcd key marking job cancelled.
func CancelledKey(job string) string { return CancelledPrefix + job }

// ExclusionKey is the etcd key excluding node from tasks of kind.
func ExclusionKey(node, kind string) string { return ExclusionsPrefix + node + "/" + kind }

// NodeExclusionsPrefix is the prefix of every exclusion of node.
func NodeExclusionsPrefix(node string) string { return ExclusionsPrefix + node + "/" }

// S3 keys.
const (
	// FrameIndexDigits is the zero padding of frame indices in keys and ids.
	FrameIndexDigits = 6
	// ModelsPrefix is where the model store keeps models.
	ModelsPrefix = "models/"
)

// FrameKey is the S3 key of frame index of job: jobs/<job>/frames/000042.png.
func FrameKey(job string, index int) string {
	return fmt.Sprintf("jobs/%s/frames/%0*d.png", job, FrameIndexDigits, index)
}

// ParseFrameKey is the frame index of a key of job's frames (FrameKey).
func ParseFrameKey(job, key string) (int, bool) {
	rest, ok := strings.CutPrefix(key, FramesPrefix(job))
	if !ok {
		return 0, false
	}
	digits, ok := strings.CutSuffix(rest, ".png")
	if !ok || len(digits) != FrameIndexDigits {
		return 0, false
	}
	i, err := strconv.Atoi(digits)
	if err != nil || i < 0 {
		return 0, false
	}
	return i, true
}

// FramesPrefix is the S3 prefix of every frame of job.
func FramesPrefix(job string) string { return JobObjectsPrefix(job) + "frames/" }

// ManifestKey is the S3 key of job's manifest: its summary, naming the
// shards that list its frames and tasks.
func ManifestKey(job string) string { return JobObjectsPrefix(job) + "manifest.json" }

// ManifestShardKey is the S3 key of a shard of job's manifest (JSON Lines of
// ManifestLine): shard seq of task chunk n, written by the leader of term
// (its election revision), so that a deposed leader's late write never
// lands on a shard its successor recorded.
func ManifestShardKey(job string, n int, term int64, seq int) string {
	return fmt.Sprintf("%sc%06d-t%d-s%04d.jsonl", ManifestShardsPrefix(job), n, term, seq)
}

// ManifestShardsPrefix is the S3 prefix of job's manifest shards.
func ManifestShardsPrefix(job string) string { return JobObjectsPrefix(job) + "manifest/" }

// JobObjectsPrefix holds every S3 object of a job: frames, outputs and the
// manifest (its inputs are content-addressed and shared between jobs).
func JobObjectsPrefix(job string) string { return "jobs/" + job + "/" }

// ModelKey is the S3 key of file (a slash-separated path inside the model)
// of model name in the model store: models/<name>/files/<file>.
func ModelKey(name, file string) string {
	return ModelsPrefix + name + "/files/" + strings.TrimPrefix(file, "/")
}

// ModelManifestKey is the S3 key of the manifest (file list, sizes and
// SHA-256 sums) of model name in the model store.
func ModelManifestKey(name string) string { return ModelsPrefix + name + "/model.json" }

// ModelManifest lists the files of a model in the model store.
type ModelManifest struct {
	Name   string      `json:"name"`
	Family string      `json:"family,omitempty"`
	Files  []ModelFile `json:"files"`
}

// ModelFile is one file of a stored model.
type ModelFile struct {
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// ValidID reports whether s can be used as a job or node id: it appears in
// NATS subject tokens, etcd keys and S3 keys, so it is limited to
// [A-Za-z0-9_-], 1..64 characters.
func ValidID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_':
		default:
			return false
		}
	}
	return true
}
