package main

import (
	"bytes"
	"context"
	"encoding/json"
	"image"
	"image/png"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/latentfarm/latentfarm/internal/testfixtures"
	"github.com/latentfarm/latentfarm/shared/wire"
	"github.com/spf13/pflag"
)

func TestSubmitFlags_Apply(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string // error text; empty for success
	}{
		{[]string{"--steps", "0"}, "--steps 0: must be at least 1"},
		{[]string{"--width", "-8", "--height", "64"}, "--width -8: must be at least 1"},
		{[]string{"--seeds", "1,x", "--steps", "20"}, `--seeds: "x" is not a number`},
		{[]string{"--steps", "12", "--width", "32", "--height", "48", "--seeds", "3,4"}, ""},
	} {
		fs := pflag.NewFlagSet("submit", pflag.ContinueOnError)
		var sf submitFlags
		sf.register(fs)
		if err := fs.Parse(tc.args); err != nil {
			t.Fatal(err)
		}
		var spec wire.JobSpec
		err := sf.apply(fs, &spec)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%v: %v", tc.args, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%v: error %v, want %q", tc.args, err, tc.want)
		case tc.want == "" && (spec.Steps != 12 || spec.Width != 32 || spec.Height != 48 || len(spec.Seeds.List) != 2):
			t.Errorf("%v: spec %+v", tc.args, spec)
		}
	}
}

// TestSubmit_BadImageInputsRefusedBeforeSending runs `farm submit` with
// broken image files against an address where no farm listens: each is
// refused with a message naming the problem, before any connection (an
// attempt to connect would fail with another message).
func TestSubmit_BadImageInputsRefusedBeforeSending(t *testing.T) {
	dir := t.TempDir()
	good := testfixtures.Path(t, "golden/img2img_init_image.png")
	data, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	truncated := filepath.Join(dir, "cut.png")
	text := filepath.Join(dir, "notes.png")
	if err := os.WriteFile(truncated, data[:len(data)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(text, []byte("not an image\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	smallMask := filepath.Join(dir, "mask8.png")
	var buf bytes.Buffer
	if err := png.Encode(&buf, image.NewGray(image.Rect(0, 0, 8, 8))); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(smallMask, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"truncated png", []string{"--init-image", truncated}, "cut.png: truncated or corrupt PNG"},
		{"text file named .png", []string{"--init-image", text}, "notes.png: not a PNG or JPEG image"},
		{"mask of another size", []string{"--init-image", good, "--mask", smallMask}, "mask: is 8x8 but the init image is 16x16"},
		{"outpaint not multiple of 8", []string{"--init-image", good, "--outpaint", "5,0,0,0"}, "outpaint.left: 5 is not a multiple of 8"},
		{"mask and outpaint", []string{"--init-image", good, "--mask", good, "--outpaint", "8,0,0,0"}, "give either mask or outpaint"},
		{"strength", []string{"--init-image", good, "--strength", "1.5"}, "strength: 1.5 outside (0, 1]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"--url", "http://127.0.0.1:9", "--token", "x", "--model", "demo", "--prompt", "a red circle"}, tc.args...)
			err := execute(context.Background(), append([]string{"submit"}, args...)...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("farm submit %v: error %v, want one containing %q", tc.args, err, tc.want)
			}
			if strings.Contains(err.Error(), "127.0.0.1:9") {
				t.Errorf("the bad input reached the network: %v", err)
			}
		})
	}
}

// TestSubmitFlags_RenderNames checks that farm submit takes farm render's
// flag names, and its old spellings as aliases of the same setting.
func TestSubmitFlags_RenderNames(t *testing.T) {
	parse := func(args ...string) (wire.JobSpec, error) {
		fs := pflag.NewFlagSet("submit", pflag.ContinueOnError)
		var sf submitFlags
		sf.register(fs)
		if err := fs.Parse(args); err != nil {
			t.Fatal(err)
		}
		var spec wire.JobSpec
		err := sf.apply(fs, &spec)
		return spec, err
	}
	want := wire.JobSpec{NegativePrompt: "blurry", CFGScale: wire.GuidanceScale(5.5), Sampler: "dpmpp_2m", Schedule: "karras", Steps: 12,
		Width: 64, Height: 32, ClipSkip: 1, Seeds: wire.Seeds{List: []int64{42}}}
	common := []string{"--sampler", "dpmpp_2m", "--schedule", "karras", "--steps", "12", "--width", "64", "--height", "32", "--clip-skip", "1", "--seed", "42"}
	for _, names := range [][2]string{{"--cfg-scale", "--negative-prompt"}, {"--cfg", "--negative"}} {
		spec, err := parse(append([]string{names[0], "5.5", names[1], "blurry"}, common...)...)
		if err != nil {
			t.Fatalf("%s, %s: %v", names[0], names[1], err)
		}
		if !reflect.DeepEqual(spec, want) {
			t.Errorf("%s, %s: spec\n%+v\nwant\n%+v", names[0], names[1], spec, want)
		}
	}
	fs := pflag.NewFlagSet("submit", pflag.ContinueOnError)
	var sf submitFlags
	sf.register(fs)
	for _, alias := range [][2]string{{"cfg", "cfg-scale"}, {"negative", "negative-prompt"}} {
		f := fs.Lookup(alias[0])
		if f.Usage != "alias of --"+alias[1] || !f.Hidden {
			t.Errorf("--%s: help %q, hidden %v; want %q, hidden", alias[0], f.Usage, f.Hidden, "alias of --"+alias[1])
		}
	}
	// Both commands define the shared flags in one place: the same help.
	render := pflag.NewFlagSet("render", pflag.ContinueOnError)
	var rf renderFlags
	rf.register(newSettings(render))
	render.VisitAll(func(rfl *pflag.Flag) {
		if sfl := fs.Lookup(rfl.Name); sfl != nil && rfl.Name != "model" && rfl.Name != "prompt" && rfl.Name != "backend" &&
			(sfl.Usage != rfl.Usage || sfl.DefValue != rfl.DefValue || sfl.Value.Type() != rfl.Value.Type()) {
			t.Errorf("--%s: submit's %q (default %q) differs from render's %q (default %q)", rfl.Name, sfl.Usage, sfl.DefValue, rfl.Usage, rfl.DefValue)
		}
	})
	for _, args := range [][]string{{"--seed", "1", "--seeds", "2,3"}, {"--seed", "1", "--seed-start", "4"}} {
		if _, err := parse(args...); err == nil || !strings.Contains(err.Error(), "give one of --seed, --seeds or --seed-start") {
			t.Errorf("%v: error %v", args, err)
		}
	}
}

// TestSubmit_SpecFromStdin submits `farm submit -` with a spec on stdin
// to an API server that records what it is sent; flags still override the
// spec's fields.
func TestSubmit_SpecFromStdin(t *testing.T) {
	var got wire.JobSpec
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/v1/jobs" {
			http.NotFound(w, r)
			return
		}
		if err := json.NewDecoder(r.Body).Decode(&got); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		json.NewEncoder(w).Encode(wire.SubmitResponse{Job: wire.JobStatus{ID: "job-1", State: "queued"}})
	}))
	t.Cleanup(srv.Close)
	oldIn, oldOut := stdin, stdout
	t.Cleanup(func() { stdin, stdout = oldIn, oldOut })
	stdin = strings.NewReader("model: demo\nprompts: [a red circle, a blue square]\nsteps: 8\ncfg_scale: 6\n")
	var out bytes.Buffer
	stdout = &out
	mustRun(t, []string{"submit", "-", "--url", srv.URL, "--token", "x", "--seed", "9", "--cfg-scale", "4"})
	if got.Model != "demo" || len(got.Prompts) != 2 || got.Steps != 8 || got.CFG() != 4 || !reflect.DeepEqual(got.Seeds.List, []int64{9}) {
		t.Errorf("sent %+v", got)
	}
	if !strings.HasPrefix(out.String(), "job-1 queued") {
		t.Errorf("printed %q", out.String())
	}
	stdin = strings.NewReader("model: [not, a, string\n")
	quietStderr(t)
	err := execute(context.Background(), "submit", "-", "--url", srv.URL, "--token", "x")
	if err == nil || !strings.HasPrefix(err.Error(), "stdin: wire: job spec:") {
		t.Errorf("a broken spec on stdin: %v", err)
	}
}

// TestSubmit_ZeroInFileRefused: a spec file giving steps as 0 is refused
// with every problem, before anything is sent.
func TestSubmit_ZeroInFileRefused(t *testing.T) {
	p := filepath.Join(t.TempDir(), "job.yaml")
	if err := os.WriteFile(p, []byte("model: demo\nprompts: [a red circle]\nsteps: 0\nsampler: heun\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := execute(context.Background(), "submit", p, "--url", "http://127.0.0.1:9", "--token", "x")
	if err == nil || !strings.Contains(err.Error(), "steps: 0 is not a valid value") || !strings.Contains(err.Error(), "sampler:") {
		t.Fatalf("got %v, want errors on steps and sampler", err)
	}
}

// TestSubmitFlags_CountWithoutSeedStart: --count alone asks for random
// seeds (the coordinator picks the start); with --seed-start it is a range.
func TestSubmitFlags_CountWithoutSeedStart(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want wire.Seeds
	}{
		{[]string{"--count", "3"}, wire.Seeds{}},
		{[]string{"--count", "3", "--seed-start", "7"}, wire.SeedRange(7, 3)},
	} {
		fs := pflag.NewFlagSet("submit", pflag.ContinueOnError)
		var sf submitFlags
		sf.register(fs)
		if err := fs.Parse(tc.args); err != nil {
			t.Fatal(err)
		}
		var spec wire.JobSpec
		if err := sf.apply(fs, &spec); err != nil {
			t.Fatalf("%v: %v", tc.args, err)
		}
		if spec.ImagesPerPrompt != 3 || !reflect.DeepEqual(spec.Seeds, tc.want) {
			t.Errorf("%v: %d images, seeds %+v; want 3 and %+v", tc.args, spec.ImagesPerPrompt, spec.Seeds, tc.want)
		}
		if err := spec.Validate(); err != nil && strings.Contains(err.Error(), "seeds") {
			t.Errorf("%v: %v", tc.args, err)
		}
	}
}
