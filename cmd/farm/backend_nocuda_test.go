//go:build !cuda

package main

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/latentfarm/latentfarm/internal/testfixtures"
)

const noCUDA = "backend cuda: this binary was built without CUDA (build with -tags cuda)"

func TestBackendFlags_Open_WithoutCUDATag(t *testing.T) {
	for _, tc := range []struct {
		name, choice, line, err string
	}{
		{"auto", "auto", "backend cpu: this binary was built without CUDA (build with -tags cuda)\n", ""},
		{"cpu", "cpu", "backend cpu: as asked (--backend cpu)\n", ""},
		{"cuda", "cuda", "", noCUDA},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var log strings.Builder
			f := backendFlags{choice: tc.choice, device: "0"}
			b, release, err := f.open(&log)
			if tc.err != "" {
				if err == nil || err.Error() != tc.err {
					t.Fatalf("err = %v; want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer release()
			if b.Name() != "cpu" || log.String() != tc.line {
				t.Errorf("backend %s, log %q; want cpu, %q", b.Name(), log.String(), tc.line)
			}
		})
	}
}

func TestRender_Backend_WithoutCUDATag(t *testing.T) {
	fix := testfixtures.Dir(t)
	dir := t.TempDir()
	one := []string{"--model", filepath.Join(fix, "model"), "--prompt", "x", "--output", filepath.Join(dir, "x.png")}
	spec := []string{"--spec", filepath.Join(dir, "missing.yaml"), "--output", dir}
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"cuda", append(one, "--backend", "cuda"), 1, noCUDA},
		{"spec on cuda", append(spec, "--backend", "cuda"), 1, noCUDA},
		{"unknown backend", append(one, "--backend", "rocm"), 2, `--backend "rocm": want auto, cpu or cuda`},
		{"spec, unknown backend", append(spec, "--backend", "rocm"), 2, `--backend "rocm": want auto, cpu or cuda`},
		{"bad device", append(one, "--device", "gpu1"), 2, `--device "gpu1": want a GPU number, 0 or more`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := execute(context.Background(), append([]string{"render"}, tc.args...)...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("farm render %s: error %v, want one containing %q", strings.Join(tc.args, " "), err, tc.want)
			}
			var ue *usageError
			if errors.As(err, &ue) != (tc.code == 2) {
				t.Errorf("farm render %s: usage error %v, want %v", strings.Join(tc.args, " "), !(tc.code == 2), tc.code == 2)
			}
			if code := run(append([]string{"render", "--quiet"}, tc.args...)); code != tc.code {
				t.Errorf("farm render %s: exit code %d, want %d", strings.Join(tc.args, " "), code, tc.code)
			}
		})
	}
}
