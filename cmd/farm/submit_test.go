package main

import (
	"bytes"
	"context"
	"flag"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/latentfarm/latentfarm/internal/testfixtures"
	"github.com/latentfarm/latentfarm/shared/wire"
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
		fs := flag.NewFlagSet("submit", flag.ContinueOnError)
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
			err := runSubmit(context.Background(), args)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("farm submit %v: error %v, want one containing %q", tc.args, err, tc.want)
			}
			if strings.Contains(err.Error(), "127.0.0.1:9") {
				t.Errorf("the bad input reached the network: %v", err)
			}
		})
	}
}
