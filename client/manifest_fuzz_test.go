package client

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"testing"

	"github.com/latentfarm/latentfarm/shared/wire"
)

// FuzzEachManifestFrame feeds EachManifestFrame the bytes a coordinator
// (or anything posing as one) serves as a manifest. It never panics; on an
// input that JSON accepts as a manifest it agrees with decoding it whole:
// the same frames in the same order, the same counts and summary.
func FuzzEachManifestFrame(f *testing.F) {
	m := wire.Manifest{JobID: "j1", State: wire.JobDone, FramesTotal: 3, GPUSeconds: 1.5,
		Nodes: map[string]int{"n1": 2}, Shards: []string{"jobs/j1/manifest/c000000-t7-s0000.jsonl"},
		Frames: []wire.ManifestFrame{{Index: 1, Key: "jobs/j1/frames/000001.png", Prompt: "a fox", Seed: 2, Node: "n1"},
			{Index: 0, Key: "jobs/j1/frames/000000.png", Prompt: "a fox", Seed: 1, Node: "n1"}},
		Failed: []wire.FailedFrame{{Index: 2, TaskID: "j1-f000002-000002", Error: wire.Error{Code: wire.CodeRenderFailed}}},
		Tasks:  []wire.ManifestTask{{ID: "j1-f000000-000001", State: wire.TaskDone, Frames: [2]int{0, 1}, Attempt: 1, Renders: 1}}}
	good, _ := json.Marshal(m)
	f.Add(good)
	f.Add([]byte(`{"job_id":"j","frames":[],"failed":[],"tasks":[]}`))
	f.Add([]byte(`{"frames":[{"index":1},{"index":"x"}]}`))
	f.Add([]byte(`{"frames":{}}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var frames []wire.ManifestFrame
		sum, err := EachManifestFrame(bytes.NewReader(data), func(fr wire.ManifestFrame) error {
			frames = append(frames, fr)
			return nil
		})
		var whole wire.Manifest
		if err != nil || json.Unmarshal(data, &whole) != nil {
			return
		}
		if !reflect.DeepEqual(frames, whole.Frames) && len(frames)+len(whole.Frames) > 0 {
			t.Fatalf("frames one at a time %+v, whole %+v", frames, whole.Frames)
		}
		if sum.FrameCount != len(whole.Frames) || sum.FailedCount != len(whole.Failed) || sum.TaskCount != len(whole.Tasks) {
			t.Fatalf("counts %d/%d/%d, whole %d/%d/%d", sum.FrameCount, sum.FailedCount, sum.TaskCount,
				len(whole.Frames), len(whole.Failed), len(whole.Tasks))
		}
		whole.Frames, whole.Failed, whole.Tasks = nil, nil, nil
		if a, b := mustJSON(t, sum.Manifest), mustJSON(t, whole); !bytes.Equal(a, b) {
			t.Fatalf("summary %s, whole %s", a, b)
		}
	})
}

func TestEachManifestFrame_StopsOnCallbackError(t *testing.T) {
	stop := errors.New("stop")
	n := 0
	_, err := EachManifestFrame(bytes.NewReader([]byte(`{"frames":[{"index":0},{"index":1}]}`)), func(wire.ManifestFrame) error {
		n++
		return stop
	})
	if !errors.Is(err, stop) || n != 1 {
		t.Fatalf("error %v after %d frames, want stop after 1", err, n)
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
