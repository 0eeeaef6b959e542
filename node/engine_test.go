package node

import (
	"bytes"
	"context"
	"errors"
	"image/png"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/latentfarm/latentfarm/diffusion/backend/cpu"
	"github.com/latentfarm/latentfarm/diffusion/checkpoint"
	"github.com/latentfarm/latentfarm/diffusion/pipeline"
	"github.com/latentfarm/latentfarm/internal/testfixtures"
	"github.com/latentfarm/latentfarm/shared/wire"
	"github.com/minio/minio-go/v7"
)

// tinyModel is the sd-tiny diffusers folder of the shared fixtures.
func tinyModel(t *testing.T) string {
	return filepath.Join(testfixtures.Dir(t), "model")
}

func TestNode_EngineRendersModelFromStore(t *testing.T) {
	f := newTestFarm(t)
	ctx := context.Background()
	if _, err := PushModel(ctx, f.s3c, f.s3.Bucket, "sd-tiny", tinyModel(t)); err != nil {
		t.Fatal(err)
	}
	o := f.options("gpu0", 8)
	o.RendererName = RendererEngine
	o.CacheDir = t.TempDir()
	f.start(t, o)
	tasks := job(t, "enginejob", 2, 2, func(s *wire.JobSpec) {
		s.Model, s.Steps, s.Sampler = "sd-tiny", 3, wire.SamplerEuler
	})
	f.publish(t, tasks...)
	res := f.results(t, 1, 60*time.Second)
	if len(res) != 1 || !res[0].OK() || len(res[0].Frames) != 2 {
		t.Fatalf("results = %+v", res)
	}

	// The frame is exactly what the engine renders for the same request.
	m, err := checkpoint.Load(cpu.New(), tinyModel(t), checkpoint.Options{})
	if err != nil {
		t.Fatal(err)
	}
	m.Name = "sd-tiny"
	task := tasks[0]
	want, err := pipeline.New(cpu.New(), m).TextToImage(ctx, (&Engine{}).request(&task, task.Frames[1]), nil)
	if err != nil {
		t.Fatal(err)
	}
	var wantPNG bytes.Buffer
	if err := pipeline.EncodePNG(&wantPNG, want.Image, pipeline.Parameters(want.Request, m.Name, m.Hash)); err != nil {
		t.Fatal(err)
	}
	got := f.object(t, wire.FrameKey("enginejob", 1))
	if !bytes.Equal(got, wantPNG.Bytes()) {
		t.Errorf("frame 1 differs from a direct render (%d vs %d bytes)", len(got), wantPNG.Len())
	}
	img, err := png.Decode(bytes.NewReader(got))
	if err != nil || img.Bounds().Dx() != 16 {
		t.Fatalf("frame: %v", err)
	}
	text, err := pipeline.ReadPNGText(bytes.NewReader(got))
	if err != nil || !strings.Contains(text["parameters"], "Seed: 8") {
		t.Errorf("parameters = %q (%v)", text["parameters"], err)
	}
	if _, err := os.Stat(filepath.Join(o.CacheDir, "models", "sd-tiny", manifestFile)); err != nil {
		t.Errorf("model not cached: %v", err)
	}
	waitModelListed(t, f, "gpu0")
}

// waitModelListed waits until the node's entry lists the loaded model.
func waitModelListed(t *testing.T, f *testFarm, id string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if e := f.entry(t, id); e != nil && slices.Contains(e.ModelsLoaded, "sd-tiny") && slices.Contains(e.ModelsOnDisk, "sd-tiny") {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Errorf("entry never listed the model: %+v", f.entry(t, id))
}

func TestNode_EngineBadModelTerminates(t *testing.T) {
	f := newTestFarm(t)
	dir := t.TempDir()
	broken := filepath.Join(dir, "broken-tiny")
	if err := os.MkdirAll(broken, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(broken, "model_index.json"), []byte("{not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	o := f.options("gpu1", 8)
	o.RendererName = RendererEngine
	o.ModelsDir = dir
	f.start(t, o)
	f.publish(t, job(t, "badmodel", 1, 1, func(s *wire.JobSpec) { s.Model = "broken-tiny" })...)
	f.publish(t, job(t, "nomodel", 1, 1, func(s *wire.JobSpec) { s.Model = "absent-tiny" })...)
	res := f.results(t, 2, 20*time.Second)
	codes := map[string]wire.Result{}
	for _, r := range res {
		codes[r.JobID] = r
	}
	if r := codes["badmodel"]; r.Error == nil || r.Error.Code != wire.CodeModelLoadFailed || r.CanRetry() {
		t.Errorf("broken model: %+v", r)
	}
	// Another node may have the model: not found here is worth a retry elsewhere.
	if r := codes["nomodel"]; r.Error == nil || r.Error.Code != wire.CodeModelNotFound || !r.CanRetry() {
		t.Errorf("absent model: %+v", r)
	}
}

func TestModels_FetchVerifiesChecksums(t *testing.T) {
	f := newTestFarm(t)
	ctx := context.Background()
	src := t.TempDir()
	file := filepath.Join(src, "one.safetensors")
	if err := os.WriteFile(file, []byte("0123456789"), 0o644); err != nil {
		t.Fatal(err)
	}
	man, err := PushModel(ctx, f.s3c, f.s3.Bucket, "single", file)
	if err != nil || len(man.Files) != 1 || man.Files[0].Size != 10 {
		t.Fatalf("push: %+v, %v", man, err)
	}
	m := &Models{CacheDir: t.TempDir(), Store: f.s3c, Bucket: f.s3.Bucket}
	p, err := m.Path(ctx, "single")
	if err != nil || filepath.Base(p) != "one.safetensors" {
		t.Fatalf("Path = %q, %v", p, err)
	}
	if data, _ := os.ReadFile(p); string(data) != "0123456789" {
		t.Errorf("cached file = %q", data)
	}

	// Tamper with the stored file: same size, other bytes.
	_, err = f.s3c.PutObject(ctx, f.s3.Bucket, wire.ModelKey("single", "one.safetensors"),
		strings.NewReader("9876543210"), 10, minio.PutObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	fresh := &Models{CacheDir: t.TempDir(), Store: f.s3c, Bucket: f.s3.Bucket}
	if _, err := fresh.Path(ctx, "single"); err == nil || !strings.Contains(err.Error(), "sha256") {
		t.Fatalf("tampered model: err = %v, want a sha256 mismatch", err)
	}
	if got := fresh.OnDisk(); len(got) != 0 {
		t.Errorf("a model that failed verification is on disk: %v", got)
	}
	if _, err := fresh.Path(ctx, "nothing"); !errors.Is(err, ErrModelNotFound) {
		t.Errorf("absent model: %v", err)
	}
	if _, err := fresh.Path(ctx, "../etc"); !errors.Is(err, ErrModelNotFound) {
		t.Errorf("path-like name: %v", err)
	}
	if _, err := PushModel(ctx, f.s3c, f.s3.Bucket, "pickled", writeFile(t, "x.ckpt")); err == nil {
		t.Error("a pickle checkpoint was pushed")
	}
}

func writeFile(t *testing.T, name string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}
