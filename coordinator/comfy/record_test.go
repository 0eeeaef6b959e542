package comfy

import (
	"encoding/binary"
	"encoding/json"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/latentfarm/latentfarm/diffusion/scheduler"
	"github.com/latentfarm/latentfarm/shared/wire"
)

func TestFrameFile_RoundTrip(t *testing.T) {
	const job = "j-20260101-120000-abcdef"
	for _, o := range []outputNode{{Prefix: "ComfyUI", Type: "output"}, {Prefix: previewPrefix, Type: "temp"}, {Prefix: "a_b_c"}} {
		f := frameFile(o, job, 12)
		if f.Subfolder != "" || f.Type != o.Type {
			t.Errorf("%+v: subfolder %q type %q", o, f.Subfolder, f.Type)
		}
		gotJob, index, ok := parseFrameFile(f.Filename)
		if !ok || gotJob != job || index != 12 {
			t.Errorf("parseFrameFile(%q) = %q, %d, %v", f.Filename, gotJob, index, ok)
		}
	}
	for _, bad := range []string{"ComfyUI_00001_.png", "x.png", "p_j-1_-3_.png", "p_bad.id_00001_.png", "p_j_x_.png"} {
		if job, i, ok := parseFrameFile(bad); ok {
			t.Errorf("parseFrameFile(%q) = %q, %d", bad, job, i)
		}
	}
}

func TestCleanPrefix(t *testing.T) {
	for in, want := range map[string]string{"ComfyUI": "ComfyUI", "renders/shot 1": "shot_1", `a\b`: "b", "": "ComfyUI", "..": "ComfyUI", "é": "ComfyUI"} {
		if got := cleanPrefix(in); got != want {
			t.Errorf("cleanPrefix(%q) = %q, want %q", in, got, want)
		}
	}
}

// A finished prompt shows in /history as ComfyUI shows it.
func TestRecord_HistoryEntry(t *testing.T) {
	p := &plan{outputs: []outputNode{{Node: "9", Type: "output", Prefix: "ComfyUI"}}, pre: []string{"4", "5"}, sampler: "3",
		post: []string{"8", "9"}, classes: map[string]string{"3": "KSampler"}}
	r := newRecord(p, 7, "client1", json.RawMessage(`{"3":{}}`), nil)
	created := time.UnixMilli(1000)
	finished := time.UnixMilli(5000)
	st := wire.JobStatus{ID: "j-1", State: wire.JobDone, CreatedAt: created, FinishedAt: &finished}
	b, _ := json.Marshal(r.historyEntry(st, []int{0, 1}))
	var got map[string]any
	_ = json.Unmarshal(b, &got)
	want := map[string]any{
		"prompt": []any{float64(7), "j-1", map[string]any{"3": map[string]any{}}, map[string]any{"client_id": "client1"}, []any{"9"}},
		"outputs": map[string]any{"9": map[string]any{"images": []any{
			map[string]any{"filename": "ComfyUI_j-1_00000_.png", "subfolder": "", "type": "output"},
			map[string]any{"filename": "ComfyUI_j-1_00001_.png", "subfolder": "", "type": "output"},
		}}},
		"status": map[string]any{"status_str": "success", "completed": true, "messages": []any{
			[]any{"execution_start", map[string]any{"prompt_id": "j-1", "timestamp": float64(1000)}},
			[]any{"execution_cached", map[string]any{"nodes": []any{}, "prompt_id": "j-1", "timestamp": float64(1000)}},
			[]any{"execution_success", map[string]any{"prompt_id": "j-1", "timestamp": float64(5000)}},
		}},
		"meta": map[string]any{"9": map[string]any{"node_id": "9", "display_node": "9", "parent_node": nil, "real_node_id": "9"}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("history entry\n got %s\nwant %s", b, mustJSON(want))
	}

	st.State, st.Error = wire.JobFailed, "1 of 2 frames failed"
	e := r.historyEntry(st, []int{0})
	status := e["status"].(map[string]any)
	msgs := status["messages"].([][]any)
	last := msgs[len(msgs)-1]
	if status["completed"] != false || status["status_str"] != "error" || last[0] != "execution_error" ||
		last[1].(map[string]any)["exception_message"] != st.Error || last[1].(map[string]any)["node_id"] != "3" {
		t.Errorf("failed job's status: %+v", status)
	}
}

// Every sampler and schedule of the engine but AYS (which ComfyUI's
// KSampler does not name) is reachable by its ComfyUI name.
func TestNames_CoverTheEngine(t *testing.T) {
	for _, name := range scheduler.Names() {
		if !slices.ContainsFunc(comfySamplers(), func(c string) bool { return farmSampler(c) == name }) {
			t.Errorf("engine sampler %s has no ComfyUI name", name)
		}
	}
	for _, name := range scheduler.Schedules() {
		if name != scheduler.ScheduleAYS && !slices.ContainsFunc(comfySchedulers(), func(c string) bool { return farmSchedule(c) == name }) {
			t.Errorf("engine schedule %s has no ComfyUI name", name)
		}
	}
}

func TestObjectInfo_KSampler(t *testing.T) {
	c, _ := classByName(classKSampler)
	b, _ := json.Marshal(c.objectInfo(map[string][]string{}))
	var got struct {
		Input struct {
			Required map[string][]json.RawMessage `json:"required"`
		} `json:"input"`
		InputOrder map[string][]string `json:"input_order"`
		Output     []string            `json:"output"`
		OutputNode bool                `json:"output_node"`
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if string(got.Input.Required["sampler_name"][0]) != `["euler","euler_ancestral","dpmpp_2m","ddim"]` ||
		string(got.Input.Required["scheduler"][0]) != `["normal","karras"]` {
		t.Errorf("options: %s, %s", got.Input.Required["sampler_name"][0], got.Input.Required["scheduler"][0])
	}
	if string(got.Input.Required["steps"][1]) != `{"default":20,"max":150,"min":1,"step":1}` {
		t.Errorf("steps: %s", got.Input.Required["steps"][1])
	}
	want := []string{"model", "seed", "steps", "cfg", "sampler_name", "scheduler", "positive", "negative", "latent_image", "denoise"}
	if !reflect.DeepEqual(got.InputOrder["required"], want) || !reflect.DeepEqual(got.Output, []string{"LATENT"}) || got.OutputNode {
		t.Errorf("KSampler: order %v output %v output_node %v", got.InputOrder["required"], got.Output, got.OutputNode)
	}
}

func TestPreviewFrame(t *testing.T) {
	f := previewFrame([]byte("PNG"))
	if binary.BigEndian.Uint32(f.data[0:4]) != 1 || binary.BigEndian.Uint32(f.data[4:8]) != 2 || string(f.data[8:]) != "PNG" {
		t.Errorf("preview frame % x", f.data)
	}
}
