package wire

import (
	"encoding/json"
	"reflect"
	"testing"

	"gopkg.in/yaml.v3"
)

// FuzzJobSpec_RoundTrip takes every spec that ParseJobSpec accepts and
// Validate passes (what POST /v1/jobs admits) through the ways it travels:
// stored as a JobRecord in etcd and read back by a restarted coordinator,
// printed as JSON or YAML by farm get and submitted again. Each way gives
// back the same spec, and the same tasks with the same ids, so a restart
// or a resubmission never renders different frames. Every task also
// survives its own trip over NATS as JSON.
func FuzzJobSpec_RoundTrip(f *testing.F) {
	f.Add([]byte("model: sd15\nprompts: [a red fox, a blue heron]\nseeds: {start: 7, count: 3}\nsteps: 20\ncfg_scale: 7.5\nframes_per_task: 2\n"))
	f.Add([]byte(`{"model":"sd21-768","prompts":["日本 ✨"],"seeds":[1,2,3],"sampler":"ddim","schedule":"karras","width":768,"height":512,"clip_skip":1,"priority":"high"}`))
	f.Add([]byte("kind: animation\nmodel: tiny\nwidth: 64\nheight: 64\nframes: 9\nfps: 4\neasing: smooth\nembeddings: slerp\nkeyframes:\n- {frame: 0, prompt: dawn, seed: 1}\n- {frame: 8, prompt: dusk, seed: 2, cfg_scale: 3}\n"))
	f.Add([]byte("model: sd15\nprompts: [x]\ninit_image: inputs/sha256-" + "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef" + ".png\nstrength: 0.5\noutpaint: {left: 8, top: 0, right: 8, bottom: 0}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ParseJobSpec(data)
		if err != nil {
			return
		}
		s.Normalize()
		if s.Validate() != nil {
			return
		}
		const id = "job-1"
		want, err := Split(id, s)
		if err != nil {
			t.Fatalf("valid spec does not split: %v", err)
		}
		same := func(how string, back JobSpec) {
			t.Helper()
			if !reflect.DeepEqual(back, s) {
				t.Fatalf("%s:\n%+v\nreads back as\n%+v", how, s, back)
			}
			got, err := Split(id, back)
			if err != nil || !reflect.DeepEqual(got, want) {
				t.Fatalf("%s: tasks differ after the round trip (%v)", how, err)
			}
		}

		// Stored in etcd, read back on a coordinator restart.
		b, err := json.Marshal(JobRecord{ID: id, Spec: s})
		if err != nil {
			t.Fatalf("valid spec does not encode: %v", err)
		}
		var rec JobRecord
		if err := json.Unmarshal(b, &rec); err != nil {
			t.Fatalf("stored record %s does not decode: %v", b, err)
		}
		same("etcd JobRecord", rec.Spec)

		// Printed by farm get, submitted again.
		for _, enc := range []struct {
			name string
			fn   func(any) ([]byte, error)
		}{{"JSON", json.Marshal}, {"YAML", yaml.Marshal}} {
			b, err := enc.fn(s)
			if err != nil {
				t.Fatalf("%s: %v", enc.name, err)
			}
			back, err := ParseJobSpec(b)
			if err != nil {
				t.Fatalf("%s %s does not parse: %v", enc.name, b, err)
			}
			back.Normalize()
			if err := back.Validate(); err != nil {
				t.Fatalf("%s %s no longer validates: %v", enc.name, b, err)
			}
			same(enc.name+" resubmitted", back)
		}

		// Tasks as published on TASKS and decoded by a node.
		for _, task := range want {
			b, err := json.Marshal(task)
			if err != nil {
				t.Fatalf("task %s does not encode: %v", task.ID, err)
			}
			var back Task
			if err := json.Unmarshal(b, &back); err != nil || !reflect.DeepEqual(back, task) {
				t.Fatalf("task %s: %s decodes as %+v (%v)", task.ID, b, back, err)
			}
		}
	})
}
