package e2e

import (
	"bytes"
	"context"
	"errors"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/latentfarm/latentfarm/client"
	"github.com/latentfarm/latentfarm/diffusion/backend/cpu"
	"github.com/latentfarm/latentfarm/diffusion/checkpoint"
	"github.com/latentfarm/latentfarm/diffusion/pipeline"
	"github.com/latentfarm/latentfarm/internal/testfixtures"
	"github.com/latentfarm/latentfarm/node"
	"github.com/latentfarm/latentfarm/shared/media"
	"github.com/latentfarm/latentfarm/shared/wire"
	"github.com/minio/minio-go/v7"
)

// submitLocal does what `farm submit` does with a spec naming local image
// files: read and check them, upload them, submit.
func submitLocal(ctx context.Context, cli *client.Client, spec wire.JobSpec) (wire.JobStatus, error) {
	in, fe := spec.ReadLocalInputs()
	if len(fe) > 0 {
		return wire.JobStatus{}, fe
	}
	if err := cli.UploadInputs(ctx, in, &spec); err != nil {
		return wire.JobStatus{}, err
	}
	return cli.Submit(ctx, spec)
}

// TestFarm_ImageInputsFromLocalFiles runs img2img, inpainting and
// outpainting jobs from local files through the farm, and checks that bad
// files are refused with a clear message before anything is created.
func TestFarm_ImageInputsFromLocalFiles(t *testing.T) {
	fixtures := testfixtures.Dir(t)
	f := newFarm(t)
	c := f.startCoordinator(t)
	o := f.nodeOptions(t, "engine0", 8, 0)
	o.RendererName, o.ModelsDir = node.RendererEngine, fixtures
	f.startNode(t, o)
	ctx := context.Background()
	initPNG := testfixtures.Path(t, "golden/img2img_init_image.png")
	maskPNG := testfixtures.Path(t, "golden/inpaint_mask.png")
	base := wire.JobSpec{Model: "model", ModelFamily: wire.FamilyTiny, Steps: 6, CFGScale: wire.GuidanceScale(7.5),
		Sampler: wire.SamplerEuler, Seeds: wire.SeedRange(5, 2), InitImage: initPNG}

	img2img := base
	img2img.Prompts, img2img.Strength = []string{"a fantasy landscape"}, 0.6
	inpaint := base
	inpaint.Model, inpaint.Prompts, inpaint.Mask = "model-inpaint", []string{"a red park bench under a tree"}, maskPNG
	outpaint := base
	outpaint.Prompts, outpaint.Outpaint = []string{"a wide landscape"}, &wire.Padding{Left: 8, Right: 8}
	for name, spec := range map[string]wire.JobSpec{"img2img": img2img, "inpaint": inpaint, "outpaint": outpaint} {
		t.Run(name, func(t *testing.T) {
			st, err := submitLocal(ctx, c.cli, spec)
			if err != nil {
				t.Fatal(err)
			}
			final := waitJob(t, c.cli, st.ID, 120*time.Second)
			if final.State != wire.JobDone {
				t.Fatalf("job ended %s: %s", final.State, final.Error)
			}
			m := f.checkComplete(t, st.ID, 2)
			if !wire.ValidInputKey(m.Spec.InitImage) {
				t.Errorf("stored spec names %q, want an input key", m.Spec.InitImage)
			}
			wantW := 16
			if spec.Outpaint != nil {
				wantW = 32
			}
			got, err := png.Decode(bytes.NewReader(f.object(t, m.Frames[0].Key)))
			if err != nil {
				t.Fatal(err)
			}
			if b := got.Bounds(); b.Dx() != wantW || b.Dy() != 16 {
				t.Errorf("frame is %dx%d, want %dx16", b.Dx(), b.Dy(), wantW)
			}
			checkDirectRender(t, fixtures, m, f.object(t, m.Frames[0].Key))
		})
	}

	t.Run("bad inputs", func(t *testing.T) {
		dir := t.TempDir()
		good, err := os.ReadFile(initPNG)
		if err != nil {
			t.Fatal(err)
		}
		truncated := filepath.Join(dir, "truncated.png")
		text := filepath.Join(dir, "notes.png")
		smallMask := filepath.Join(dir, "mask8.png")
		writeFile(t, truncated, good[:len(good)/2])
		writeFile(t, text, []byte("this is a text file, not an image\n"))
		var buf bytes.Buffer
		mask := image.NewGray(image.Rect(0, 0, 8, 8))
		mask.SetGray(2, 2, color.Gray{Y: 255})
		if err := png.Encode(&buf, mask); err != nil {
			t.Fatal(err)
		}
		writeFile(t, smallMask, buf.Bytes())

		jobsBefore, _ := c.cli.Jobs(ctx, "", 0)
		for _, tc := range []struct {
			name, initImage, mask, want string
		}{
			{"truncated png", truncated, "", "truncated"},
			{"text file named .png", text, "", "not a PNG or JPEG"},
			{"mask of another size", initPNG, smallMask, "mask: is 8x8 but the init image is 16x16"},
		} {
			spec := img2img
			spec.InitImage, spec.Mask = tc.initImage, tc.mask
			_, err := submitLocal(ctx, c.cli, spec)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%s: error %v, want one saying %q", tc.name, err, tc.want)
			}
		}
		// The coordinator refuses inputs that were never uploaded, and
		// bytes that are not an image.
		ghost := img2img
		ghost.InitImage, ghost.Width, ghost.Height = wire.InputKey(strings.Repeat("0", 64), "png"), 16, 16
		_, err = c.cli.Submit(ctx, ghost)
		var ae *client.APIError
		if !errors.As(err, &ae) || !ae.Fields.Has("init_image") || !strings.Contains(err.Error(), "never uploaded") {
			t.Errorf("a never-uploaded input: got %v", err)
		}
		if _, err := c.cli.UploadInput(ctx, good[:len(good)/2]); err == nil || !strings.Contains(err.Error(), "truncated") {
			t.Errorf("a truncated upload: got %v", err)
		}
		jobsAfter, _ := c.cli.Jobs(ctx, "", 0)
		if len(jobsAfter) != len(jobsBefore) {
			t.Errorf("%d jobs before the bad submits, %d after", len(jobsBefore), len(jobsAfter))
		}
		// Only the three good jobs' inputs are stored: init image and mask.
		n := 0
		for obj := range f.s3c.ListObjects(ctx, f.s3.Bucket, minio.ListObjectsOptions{Prefix: wire.InputsPrefix, Recursive: true}) {
			if obj.Err != nil {
				t.Fatal(obj.Err)
			}
			n++
		}
		if n != 2 {
			t.Errorf("%d objects under %s, want 2 (the init image and the mask)", n, wire.InputsPrefix)
		}
	})
}

// checkDirectRender compares frame 0 of a job with inputs with what the
// engine renders for the same request from the same local files.
func checkDirectRender(t *testing.T, fixtures string, m wire.Manifest, got []byte) {
	t.Helper()
	model, err := checkpoint.Load(cpu.New(), filepath.Join(fixtures, m.Spec.Model), checkpoint.Options{})
	if err != nil {
		t.Fatal(err)
	}
	read := func(name string) image.Image {
		if name == "" {
			return nil
		}
		in, _, err := media.ReadInput(testfixtures.Path(t, name))
		if err != nil {
			t.Fatal(err)
		}
		return in.Image
	}
	var mask image.Image
	if m.Spec.Mask != "" {
		mask = read("golden/inpaint_mask.png")
	}
	tasks, err := wire.Split(m.JobID, m.Spec)
	if err != nil {
		t.Fatal(err)
	}
	req := node.FrameRequest(&tasks[0], tasks[0].Frames[0], read("golden/img2img_init_image.png"), mask)
	want, err := pipeline.New(cpu.New(), model).Generate(context.Background(), req, nil)
	if err != nil {
		t.Fatal(err)
	}
	var wantPNG bytes.Buffer
	if err := pipeline.EncodePNG(&wantPNG, want.Image, ""); err != nil {
		t.Fatal(err)
	}
	if d := maxLevelDiff(t, got, wantPNG.Bytes()); d != 0 {
		t.Errorf("frame 0 differs from a direct render of the same request by %d levels", d)
	}
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}
