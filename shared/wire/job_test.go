package wire

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
)

func validSpec() JobSpec {
	s := JobSpec{Model: "sd15", Prompts: []string{"a cat", "a dog"}, Seeds: SeedRange(100, 3)}
	s.Normalize()
	return s
}

func TestJobSpec_Validate_Valid(t *testing.T) {
	s := validSpec()
	if err := s.Validate(); err != nil {
		t.Fatalf("valid spec refused: %v", err)
	}
	if got := s.TotalFrames(); got != 6 {
		t.Fatalf("TotalFrames = %d, want 6", got)
	}
	tiny := JobSpec{Model: "sd-tiny", Prompts: []string{"x"}, Width: 8, Height: 16}
	tiny.Normalize()
	if err := tiny.Validate(); err != nil {
		t.Fatalf("tiny 8x16 refused: %v", err)
	}
}

// TestJobSpec_Validate_EveryError checks that one spec with many problems
// gets one error per problem, each naming its field.
func TestJobSpec_Validate_EveryError(t *testing.T) {
	bad := -2
	s := JobSpec{
		Kind: "batch", Model: "bad/name", ModelFamily: "sd9", Precision: "fp8", Backend: "tpu",
		Prompts: []string{"ok", ""}, PromptsFile: "p.txt",
		Seeds: Seeds{List: []int64{1, 1, -5}}, ImagesPerPrompt: 2,
		Width: 513, Height: 4096, Steps: 0, CFGScale: GuidanceScale(31), Sampler: "heun", Schedule: "linear",
		ClipSkip: 20, Priority: "urgent", FramesPerTask: 100, MaxRetries: &bad,
		Keyframes: []Keyframe{{Frame: 1}}, Mask: "m.png",
	}
	err := s.Validate()
	fe, ok := AsFieldErrors(err)
	if !ok {
		t.Fatalf("Validate returned %T %v, want FieldErrors", err, err)
	}
	want := []string{
		"model", "model_family", "precision", "backend", "prompts_file", "prompts[1]",
		"seeds[1]", "seeds[2]", "images_per_prompt", "width", "height", "steps", "cfg_scale",
		"sampler", "schedule", "clip_skip", "priority", "frames_per_task", "max_retries",
		"keyframes", "mask",
	}
	for _, f := range want {
		if !fe.Has(f) {
			t.Errorf("no error for field %q; got %v", f, fe)
		}
	}
	for _, e := range fe {
		if e.Reason == "" {
			t.Errorf("field %q has an empty reason", e.Field)
		}
	}
	if len(fe) < len(want) {
		t.Errorf("got %d errors, want at least %d", len(fe), len(want))
	}
}

func TestJobSpec_Validate_Fields(t *testing.T) {
	tests := []struct {
		name  string
		edit  func(*JobSpec)
		field string
	}{
		{"no model", func(s *JobSpec) { s.Model = "" }, "model"},
		{"no prompts", func(s *JobSpec) { s.Prompts = nil }, "prompts"},
		{"width not multiple of 8", func(s *JobSpec) { s.Width = 100 }, "width"},
		{"height too small", func(s *JobSpec) { s.Height = 0 }, "height"},
		{"steps too many", func(s *JobSpec) { s.Steps = 151 }, "steps"},
		{"cfg negative", func(s *JobSpec) { s.CFGScale = GuidanceScale(-1) }, "cfg_scale"},
		{"seed start negative", func(s *JobSpec) { v := int64(-1); s.Seeds.Start = &v }, "seeds.start"},
		{"seed range overflows", func(s *JobSpec) { v := int64(MaxSeed); s.Seeds.Start = &v }, "seeds.count"},
		{"count without start", func(s *JobSpec) { s.Seeds.Start = nil }, "seeds.start"},
		{"ipp disagrees with count", func(s *JobSpec) { s.ImagesPerPrompt = 5 }, "images_per_prompt"},
		{"too many frames", func(s *JobSpec) {
			s.Seeds = SeedRange(0, MaxFrames)
			s.ImagesPerPrompt = MaxFrames
		}, "images_per_prompt"},
		{"animation with batch prompts", func(s *JobSpec) { s.Kind = KindAnimation }, "prompts"},
		{"unknown kind", func(s *JobSpec) { s.Kind = "video" }, "kind"},
		{"too big for any class", func(s *JobSpec) {
			s.Width, s.Height, s.ModelFamily, s.Precision = 2048, 2048, FamilySD1, PrecisionFP32
		}, "width"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := validSpec()
			tc.edit(&s)
			fe, ok := AsFieldErrors(s.Validate())
			if !ok || !fe.Has(tc.field) {
				t.Fatalf("want an error on %q, got %v", tc.field, fe)
			}
		})
	}
}

func TestParseJobSpec_YAMLAndJSON(t *testing.T) {
	y := `
model: sd15
prompts: [a cat, a dog]
negative_prompt: blurry
seeds: {start: 7, count: 2}
width: 64
height: 64
steps: 10
sampler: dpmpp_2m
schedule: karras
priority: high
max_retries: 0
`
	sy, err := ParseJobSpec([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	if sy.Seeds.Start == nil || *sy.Seeds.Start != 7 || sy.Seeds.Count != 2 || sy.Retries() != 0 {
		t.Fatalf("yaml seeds/retries parsed wrong: %+v", sy)
	}
	data, err := json.Marshal(sy)
	if err != nil {
		t.Fatal(err)
	}
	sj, err := ParseJobSpec(data)
	if err != nil {
		t.Fatalf("json round trip: %v (%s)", err, data)
	}
	if !reflect.DeepEqual(sy, sj) {
		t.Fatalf("json round trip differs:\n%+v\n%+v", sy, sj)
	}
	list, err := ParseJobSpec([]byte(`{"model":"m","prompts":["p"],"seeds":[3,4,5]}`))
	if err != nil || !reflect.DeepEqual(list.Seeds.List, []int64{3, 4, 5}) {
		t.Fatalf("seed list: %v %+v", err, list.Seeds)
	}
	if _, err := ParseJobSpec([]byte("model: m\nwidht: 512\n")); err == nil || !strings.Contains(err.Error(), "widht") {
		t.Fatalf("unknown yaml field not refused: %v", err)
	}
	if _, err := ParseJobSpec([]byte(`{"model":"m","stepz":3}`)); err == nil {
		t.Fatal("unknown json field not refused")
	}
}

func TestReadJobFile_PromptsFile(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "p.txt"), []byte("# comment\nfirst\n\n second \n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "job.yaml"), []byte("model: m\nprompts_file: p.txt\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := ReadJobFile(filepath.Join(dir, "job.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(s.Prompts, []string{"first", "second"}) || s.PromptsFile != "" {
		t.Fatalf("prompts = %q, file = %q", s.Prompts, s.PromptsFile)
	}
}

func FuzzParseJobSpec(f *testing.F) {
	f.Add([]byte("model: m\nprompts: [a]\nseeds: [1,2]\n"))
	f.Add([]byte(`{"model":"m","prompts":["a"],"seeds":{"start":1,"count":2}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ParseJobSpec(data)
		if err != nil {
			return
		}
		s.Normalize()
		if s.Validate() != nil {
			return
		}
		tasks, err := Split("j1", s)
		if err != nil {
			t.Fatalf("valid spec failed to split: %v", err)
		}
		n := 0
		for _, tk := range tasks {
			n += len(tk.Frames)
		}
		if n != s.TotalFrames() {
			t.Fatalf("split covers %d frames, want %d", n, s.TotalFrames())
		}
	})
}

func TestSplit_Deterministic(t *testing.T) {
	s := JobSpec{Model: "sd15", Prompts: []string{"a", "b", "c"}, Seeds: Seeds{List: []int64{5, 9}}, FramesPerTask: 4}
	s.Normalize()
	a, err := Split("job1", s)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Split("job1", s)
	if !reflect.DeepEqual(a, b) {
		t.Fatal("two splits of the same spec differ")
	}
	ids := []string{}
	for _, tk := range a {
		ids = append(ids, tk.ID)
	}
	wantIDs := []string{"job1-f000000-000003", "job1-f000004-000005"}
	if !reflect.DeepEqual(ids, wantIDs) {
		t.Fatalf("ids = %v, want %v", ids, wantIDs)
	}
	// frames: prompt i gets every seed in order.
	var got []string
	for _, tk := range a {
		for _, fr := range tk.Frames {
			got = append(got, fr.Prompt+":"+itoa(fr.Seed)+":"+fr.Key)
		}
	}
	want := []string{
		"a:5:jobs/job1/frames/000000.png", "a:9:jobs/job1/frames/000001.png",
		"b:5:jobs/job1/frames/000002.png", "b:9:jobs/job1/frames/000003.png",
		"c:5:jobs/job1/frames/000004.png", "c:9:jobs/job1/frames/000005.png",
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("frames = %v\nwant %v", got, want)
	}
	if a[0].Class != "vram4" || a[0].Subject() != "tasks.vram4.normal.job1" || a[0].MsgID() != a[0].ID {
		t.Fatalf("class %q subject %q msgid %q", a[0].Class, a[0].Subject(), a[0].MsgID())
	}
	a[0].Attempt = 2
	if a[0].MsgID() == a[0].ID {
		t.Fatal("a retry must have its own msg id")
	}
	job, first, last, err := ParseTaskID(a[1].ID)
	if err != nil || job != "job1" || first != 4 || last != 5 {
		t.Fatalf("ParseTaskID = %q %d %d %v", job, first, last, err)
	}
}

func TestSplit_RangeSeedsCoverEveryFrameOnce(t *testing.T) {
	s := JobSpec{Model: "sd-tiny", Prompts: []string{"p"}, Seeds: SeedRange(1000, 203), Width: 16, Height: 16}
	s.Normalize()
	tasks, err := Split("jx", s)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	for _, tk := range tasks {
		for _, fr := range tk.Frames {
			if seen[fr.Index] {
				t.Fatalf("frame %d twice", fr.Index)
			}
			seen[fr.Index] = true
			if fr.Seed != 1000+int64(fr.Index) {
				t.Fatalf("frame %d seed %d", fr.Index, fr.Seed)
			}
		}
	}
	if len(seen) != 203 || len(tasks) != 51 {
		t.Fatalf("%d frames in %d tasks, want 203 in 51", len(seen), len(tasks))
	}
	keys := make([]int, 0, len(seen))
	for k := range seen {
		keys = append(keys, k)
	}
	sort.Ints(keys)
	if keys[0] != 0 || keys[len(keys)-1] != 202 {
		t.Fatalf("frame range %d..%d", keys[0], keys[len(keys)-1])
	}
}

func itoa(v int64) string { b, _ := json.Marshal(v); return string(b) }

func TestParseJobSpec_OneValueOnly(t *testing.T) {
	for name, tc := range map[string]struct{ in, want string }{
		"json with trailing junk":   {`{"model": "m", "prompts": ["a"]} x`, "data after the JSON object"},
		"two json objects":          {`{"model": "m"} {"model": "n"}`, "data after the JSON object"},
		"yaml with a broken second": {"model: m\nprompts: [a]\n---\nmodel: [\n", "second YAML document"},
		"yaml with a second":        {"model: m\n---\nmodel: n\n", "more than one YAML document"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := ParseJobSpec([]byte(tc.in))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one saying %q", err, tc.want)
			}
		})
	}
	for _, ok := range []string{"{\"model\": \"m\"}\n\n", "model: m\n", "---\nmodel: m\n", "model: m\n...\n"} {
		if _, err := ParseJobSpec([]byte(ok)); err != nil {
			t.Errorf("%q refused: %v", ok, err)
		}
	}
}

func TestParseJobSpec_InvalidUTF8NamesTheField(t *testing.T) {
	for _, tc := range []struct{ in, field string }{
		{"{\"model\": \"m\", \"prompts\": [\"ok\", \"bad \xff\"]}", "prompts[1]"},
		{"{\"model\": \"m\", \"negative_prompt\": \"\xc3\"}", "negative_prompt"},
		{"{\"kind\": \"animation\", \"keyframes\": [{\"frame\": 0, \"prompt\": \"a\"}, {\"frame\": 9, \"prompt\": \"b\xfe\"}]}", "keyframes[1].prompt"},
	} {
		_, err := ParseJobSpec([]byte(tc.in))
		fe, ok := AsFieldErrors(err)
		if !ok || !fe.Has(tc.field) || !strings.Contains(err.Error(), "not valid UTF-8") {
			t.Errorf("%q: got %v, want a UTF-8 error on %s", tc.in, err, tc.field)
		}
	}
	if _, err := ParseJobSpec([]byte("model: \"m\xff\"\n")); err == nil || !strings.Contains(err.Error(), "not valid UTF-8 at byte 9 (line 1)") {
		t.Errorf("yaml with a bad byte: %v", err)
	}
}

func TestParseJobSpec_ZeroIsNotADefault(t *testing.T) {
	for _, in := range []string{
		"model: m\nprompts: [a]\nsteps: 0\nwidth: 0\n",
		`{"model": "m", "prompts": ["a"], "steps": 0, "width": 0}`,
	} {
		s, err := ParseJobSpec([]byte(in))
		if err != nil {
			t.Fatal(err)
		}
		s.Normalize()
		fe, ok := AsFieldErrors(s.Validate())
		if !ok || !fe.Has("steps") || !fe.Has("width") || fe.Has("height") {
			t.Errorf("%q: got %v, want errors on steps and width only", in, fe)
		}
	}
	// Absent fields take the defaults; cfg_scale 0 is a value (no guidance).
	s, err := ParseJobSpec([]byte("model: m\nprompts: [a]\ncfg_scale: 0\n"))
	if err != nil {
		t.Fatal(err)
	}
	s.Normalize()
	if s.Steps != DefaultSteps || s.CFG() != 0 {
		t.Errorf("steps %d, cfg %v: want the default steps and cfg 0", s.Steps, s.CFG())
	}
	if err := s.Validate(); err != nil {
		t.Errorf("cfg_scale 0 refused: %v", err)
	}
	s, _ = ParseJobSpec([]byte("model: m\nprompts: [a]\n"))
	s.Normalize()
	if s.CFG() != DefaultCFGScale {
		t.Errorf("absent cfg_scale = %v, want %v", s.CFG(), DefaultCFGScale)
	}
	// It survives the trip through JSON that farm submit makes.
	b, _ := json.Marshal(JobSpec{Model: "m", Prompts: []string{"a"}, CFGScale: GuidanceScale(0)})
	if back, err := ParseJobSpec(b); err != nil || back.CFGScale == nil || *back.CFGScale != 0 {
		t.Errorf("cfg_scale 0 through JSON: %v %v", back.CFGScale, err)
	}
}
