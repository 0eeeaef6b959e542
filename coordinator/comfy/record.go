package comfy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/latentfarm/latentfarm/shared/wire"
)

// jobName names the farm jobs made from ComfyUI prompts.
const jobName = "comfyui"

// recordFile is the name of a prompt's record beside its job's frames.
const recordFile = "comfyui.json"

// record is what a prompt keeps for /history, /queue and the websocket
// messages. It is stored beside the job's frames, so that a restarted or
// newly elected coordinator serves it too.
type record struct {
	Number    int64             `json:"number"`
	ClientID  string            `json:"client_id,omitempty"`
	Prompt    json.RawMessage   `json:"prompt"`
	ExtraData map[string]any    `json:"extra_data"`
	Outputs   []outputNode      `json:"outputs"`
	Pre       []string          `json:"pre"`
	Sampler   string            `json:"sampler"`
	Post      []string          `json:"post"`
	Classes   map[string]string `json:"classes"`
}

// newRecord is the record of a prompt submitted as p.
func newRecord(p *plan, number int64, clientID string, prompt json.RawMessage, extra map[string]any) *record {
	if extra == nil {
		extra = map[string]any{}
	}
	if clientID != "" {
		extra["client_id"] = clientID
	}
	return &record{Number: number, ClientID: clientID, Prompt: prompt, ExtraData: extra, Outputs: p.outputs,
		Pre: p.pre, Sampler: p.sampler, Post: p.post, Classes: p.classes}
}

// outputIDs are the output nodes, as ComfyUI lists outputs_to_execute.
func (r *record) outputIDs() []string {
	out := make([]string, len(r.Outputs))
	for i, o := range r.Outputs {
		out[i] = o.Node
	}
	return out
}

// queueItem is the prompt as /queue and /history show it:
// [number, prompt_id, prompt, extra_data, outputs_to_execute].
func (r *record) queueItem(id string) []any {
	return []any{r.Number, id, r.Prompt, r.ExtraData, r.outputIDs()}
}

// farmQueueItem shows a farm job that did not come from a ComfyUI client.
func farmQueueItem(id string) []any {
	return []any{0, id, map[string]any{}, map[string]any{}, []string{}}
}

// imageFile is one image in ComfyUI's output lists.
type imageFile struct {
	Filename  string `json:"filename"`
	Subfolder string `json:"subfolder"`
	Type      string `json:"type"`
}

// frameFile names frame index of job as output o shows it:
// <prefix>_<job id>_<index>_.png, unique across jobs, as ComfyUI's counter
// makes its file names unique.
func frameFile(o outputNode, job string, index int) imageFile {
	return imageFile{Filename: fmt.Sprintf("%s_%s_%05d_.png", o.Prefix, job, index), Type: o.Type}
}

// parseFrameFile finds the job and frame of a file name frameFile made.
// Job ids never hold '_', so the prefix may.
func parseFrameFile(name string) (job string, index int, ok bool) {
	rest, found := strings.CutSuffix(name, "_.png")
	if !found {
		return "", 0, false
	}
	i := strings.LastIndexByte(rest, '_')
	if i < 0 {
		return "", 0, false
	}
	index, err := strconv.Atoi(rest[i+1:])
	rest = rest[:i]
	j := strings.LastIndexByte(rest, '_')
	if err != nil || index < 0 || j < 0 || !wire.ValidID(rest[j+1:]) {
		return "", 0, false
	}
	return rest[j+1:], index, true
}

// outputs is the "output" of each output node: the images of frames.
func (r *record) outputs(job string, frames []int) map[string]any {
	out := map[string]any{}
	for _, o := range r.Outputs {
		images := make([]imageFile, len(frames))
		for i, f := range frames {
			images[i] = frameFile(o, job, f)
		}
		out[o.Node] = map[string]any{"images": images}
	}
	return out
}

// frames lists the frames of a finished job that exist: every frame of a
// done job, those the manifest lists otherwise.
func frames(ctx context.Context, farm Farm, st wire.JobStatus) ([]int, error) {
	if st.State == wire.JobDone {
		out := make([]int, st.FramesTotal)
		for i := range out {
			out[i] = i
		}
		return out, nil
	}
	m, err := farm.Manifest(ctx, st.ID)
	if errors.Is(err, ErrNotFound) {
		return []int{}, nil
	}
	if err != nil {
		return nil, err
	}
	out := make([]int, 0, len(m.Frames))
	for _, f := range m.Frames {
		out = append(out, f.Index)
	}
	return out, nil
}

// historyEntry is a finished prompt as /history shows it.
func (r *record) historyEntry(st wire.JobStatus, frames []int) map[string]any {
	start := map[string]any{"prompt_id": st.ID, "timestamp": st.CreatedAt.UnixMilli()}
	messages := [][]any{
		{"execution_start", start},
		{"execution_cached", map[string]any{"nodes": []string{}, "prompt_id": st.ID, "timestamp": st.CreatedAt.UnixMilli()}},
	}
	status := map[string]any{"status_str": "success", "completed": true}
	switch st.State {
	case wire.JobDone:
		messages = append(messages, []any{"execution_success", r.finishData(st)})
	case wire.JobCancelled:
		messages = append(messages, []any{"execution_interrupted", r.interruptData(st)})
		status["status_str"], status["completed"] = "error", false
	default:
		messages = append(messages, []any{"execution_error", r.errorData(st)})
		status["status_str"], status["completed"] = "error", false
	}
	status["messages"] = messages
	meta := map[string]any{}
	for _, o := range r.Outputs {
		meta[o.Node] = map[string]any{"node_id": o.Node, "display_node": o.Node, "parent_node": nil, "real_node_id": o.Node}
	}
	return map[string]any{"prompt": r.queueItem(st.ID), "outputs": r.outputs(st.ID, frames), "status": status, "meta": meta}
}

// finishData is the data of execution_success.
func (r *record) finishData(st wire.JobStatus) map[string]any {
	return map[string]any{"prompt_id": st.ID, "timestamp": finishedAt(st)}
}

// interruptData is the data of execution_interrupted: the sampler stopped.
func (r *record) interruptData(st wire.JobStatus) map[string]any {
	return map[string]any{"prompt_id": st.ID, "node_id": r.Sampler, "node_type": r.Classes[r.Sampler],
		"executed": nonNil(r.Pre), "timestamp": finishedAt(st)}
}

// errorData is the data of execution_error: the sampler failed with the
// job's error.
func (r *record) errorData(st wire.JobStatus) map[string]any {
	return map[string]any{"prompt_id": st.ID, "node_id": r.Sampler, "node_type": r.Classes[r.Sampler],
		"executed": nonNil(r.Pre), "exception_message": st.Error, "exception_type": "latentfarm.JobFailed",
		"traceback": []string{}, "current_inputs": map[string]any{}, "current_outputs": map[string]any{},
		"timestamp": finishedAt(st)}
}

func finishedAt(st wire.JobStatus) int64 {
	if st.FinishedAt != nil {
		return st.FinishedAt.UnixMilli()
	}
	return st.CreatedAt.UnixMilli()
}
