//go:build !cuda

package node

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/latentfarm/latentfarm/shared/wire"
)

const lineNoCUDA = "backend cpu: this binary was built without CUDA (build with -tags cuda)"

// TestSelectBackend_WithoutCUDATag: a binary without the cuda tag renders
// on the CPU under auto, even where a GPU is present, and refuses cuda.
func TestSelectBackend_WithoutCUDATag(t *testing.T) {
	gpu := &fakeGPUs{devs: []wire.GPU{card(0, "NVIDIA GeForce RTX 4090", 24, 20)}, driver: "550.54.15", frees: []int64{20 * gib}}
	for _, tc := range []struct {
		name, choice string
		device       int
		src          GPUSource
		line, err    string
	}{
		{"auto", BackendAuto, 0, nil, lineNoCUDA, ""},
		{"empty is auto", "", 0, nil, lineNoCUDA, ""},
		{"auto with a GPU", BackendAuto, 0, gpu, lineNoCUDA, ""},
		{"cpu", BackendCPU, 0, gpu, "backend cpu: as asked (--backend cpu)", ""},
		{"cuda", BackendCUDA, 0, nil, "", "node: backend cuda: this binary was built without CUDA (build with -tags cuda)"},
		{"cuda with a GPU", BackendCUDA, 0, gpu, "", "node: backend cuda: this binary was built without CUDA (build with -tags cuda)"},
		{"unknown", "gpu", 0, nil, "", `node: backend "gpu": want auto, cpu or cuda`},
		{"negative device", BackendAuto, -1, nil, "", "node: device -1: must be 0 or more"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, fp, line, err := SelectBackend(tc.choice, tc.device, tc.src, 8*gib)
			if tc.err != "" {
				if err == nil || err.Error() != tc.err {
					t.Fatalf("err = %v; want %q", err, tc.err)
				}
				if strings.Contains(tc.err, "built without CUDA") && !errors.Is(err, ErrCUDAUnavailable) {
					t.Errorf("err %v does not match ErrCUDAUnavailable", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if line != tc.line {
				t.Errorf("line = %q; want %q", line, tc.line)
			}
			if b == nil || b.Name() != "cpu" || fp.engine != b {
				t.Errorf("backend = %v, fingerprint's = %v; want the CPU backend in both", b, fp.engine)
			}
			if fp.Backend != wire.BackendCPU || fp.UsableBytes != 8*gib || fp.Driver != "" {
				t.Errorf("fingerprint = %+v; want a cpu node posed at 8 GiB", fp)
			}
		})
	}
	if len(gpu.asked) != 0 {
		t.Errorf("the GPU source was asked for free memory of %v; a CPU node never asks", gpu.asked)
	}
}

func TestOptions_Detect(t *testing.T) {
	var buf bytes.Buffer
	o := Options{VRAMBytes: 4 * gib, Logger: hclog.New(&hclog.LoggerOptions{Output: &buf})}
	if err := o.detect(BackendAuto, 0, nil); err != nil {
		t.Fatal(err)
	}
	if o.Fingerprint == nil || o.Fingerprint.Backend != wire.BackendCPU || o.Fingerprint.engine == nil {
		t.Fatalf("fingerprint = %+v; want a cpu node with its backend", o.Fingerprint)
	}
	if !strings.Contains(buf.String(), lineNoCUDA) {
		t.Errorf("log = %q; want the line %q", buf.String(), lineNoCUDA)
	}

	given := &Fingerprint{Backend: wire.BackendCUDA, UsableBytes: 16 * gib}
	o = Options{Fingerprint: given}
	if err := o.detect(BackendCUDA, 0, nil); err != nil || o.Fingerprint != given {
		t.Errorf("detect with a fingerprint given: %v, %+v; want it kept as is", err, o.Fingerprint)
	}

	o = Options{}
	if err := o.detect(BackendCUDA, 0, nil); !errors.Is(err, ErrCUDAUnavailable) || o.Fingerprint != nil {
		t.Errorf("detect cuda = %v, %+v; want ErrCUDAUnavailable and no fingerprint", err, o.Fingerprint)
	}
}
