package node

import (
	"encoding/json"
	"errors"
	"path"
	"reflect"
	"strings"
	"testing"

	"github.com/latentfarm/latentfarm/shared/wire"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// fuzzMsg is a task message as a node pulls it: only the body, subject and
// headers are read by decode.
type fuzzMsg struct {
	jetstream.Msg
	data    []byte
	subject string
}

func (m *fuzzMsg) Data() []byte         { return m.data }
func (m *fuzzMsg) Subject() string      { return m.subject }
func (m *fuzzMsg) Headers() nats.Header { return nats.Header{} }

// FuzzDecodeTask feeds task messages (JSON from the TASKS stream and the
// job id of their subject) to the node's decode. A refused task is a
// permanent invalid_task failure; an accepted one has ids, frames and a
// size, fits this node, and can only write inside its own job's folder,
// even after an S3 gateway collapses "." and ".." in a key. Encoded again,
// an accepted task decodes to itself.
func FuzzDecodeTask(f *testing.F) {
	spec := wire.JobSpec{Model: "sd15", Prompts: []string{"a", "b"}, Seeds: wire.Seeds{List: []int64{1, 2}}}
	spec.Normalize()
	tasks, err := wire.Split("j1", spec)
	if err != nil {
		f.Fatal(err)
	}
	for _, task := range tasks {
		b, _ := json.Marshal(task)
		f.Add(b, "j1")
	}
	f.Add([]byte(`{"id":"j1-f000000-000000","kind":"animation","width":64,"height":64,"steps":1,"assemble":{"frames":9,"fps":4,"gif_key":"jobs/j1/animation.gif","mp4_key":"jobs/j1/animation.mp4","mp4":true}}`), "j1")
	f.Add([]byte(`{"id":"x","frames":[{"index":3,"key":"jobs/j1/frames/../../j2/frames/000003.png"}],"width":8,"height":8,"steps":1}`), "j1")
	f.Add([]byte(`{"id":"x","job_id":"j1","backend":"cuda","vram_bytes":99999999999999,"frames":[{"index":0}],"width":8,"height":8,"steps":1}`), "")
	n := &Node{fp: Fingerprint{Backend: wire.BackendCPU, UsableBytes: 8 << 30}}
	from := wire.Pull{Class: "cpu", Priority: wire.PriorityNormal}
	decode := func(data []byte, job string) (wire.Task, error) {
		return n.decode(&pulled{msg: &fuzzMsg{data: data, subject: "tasks.cpu.normal." + job}, from: from})
	}
	f.Fuzz(func(t *testing.T, data []byte, job string) {
		task, err := decode(data, job)
		if err != nil {
			var te *TaskError
			if !errors.As(err, &te) || !te.Permanent || te.Code != wire.CodeInvalidTask {
				t.Fatalf("refusal is not a permanent %s: %#v", wire.CodeInvalidTask, err)
			}
			return
		}
		if task.ID == "" || !wire.ValidID(task.JobID) {
			t.Fatalf("accepted task %q of job %q", task.ID, task.JobID)
		}
		if task.Backend != wire.BackendAny && task.Backend != n.fp.Backend || task.VRAMBytes > n.fp.UsableBytes {
			t.Fatalf("accepted a task for backend %q needing %d bytes", task.Backend, task.VRAMBytes)
		}
		inside := func(what, key, prefix string) {
			t.Helper()
			if !strings.HasPrefix(key, prefix) || !strings.HasPrefix(path.Clean(key), prefix) {
				t.Fatalf("%s key %q is outside %s", what, key, prefix)
			}
		}
		if a := task.Assemble; a != nil {
			if a.Frames < 1 || a.FPS < 1 {
				t.Fatalf("accepted an assembly of %d frames at %d fps", a.Frames, a.FPS)
			}
			for _, k := range []string{a.GIFKey, a.MP4Key} {
				inside("output", k, wire.OutputKey(task.JobID, ""))
			}
		} else if len(task.Frames) == 0 || task.Width <= 0 || task.Height <= 0 || task.Steps <= 0 {
			t.Fatalf("accepted %d frames of %dx%d in %d steps", len(task.Frames), task.Width, task.Height, task.Steps)
		}
		for _, fr := range task.Frames {
			inside("frame", fr.Key, wire.FramesPrefix(task.JobID))
		}
		b, err := json.Marshal(task)
		if err != nil {
			t.Fatalf("accepted task does not encode: %v", err)
		}
		back, err := decode(b, job)
		if err != nil || !reflect.DeepEqual(back, task) {
			t.Fatalf("%+v\nencoded and decoded again is\n%+v (%v)", task, back, err)
		}
	})
}
