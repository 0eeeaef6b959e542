package cuda

import (
	"strings"
	"testing"

	"github.com/latentfarm/latentfarm/diffusion/backend"
)

func TestOptions_Defaults(t *testing.T) {
	for _, tc := range []struct {
		name          string
		in            Options
		storage, upld backend.DType
		err           string
	}{
		{"zero", Options{}, backend.F16, backend.F32, ""},
		{"f32 storage", Options{}.WithStorage(backend.F32), backend.F32, backend.F32, ""},
		{"bf16", Options{Storage: backend.BF16}, backend.BF16, backend.F32, ""},
		{"f16 uploads", Options{}.WithUploads(backend.F16), backend.F16, backend.F16, ""},
		{"bad storage", Options{Storage: 7}, 0, 0, "cuda: storage type dtype(7): want f32, f16 or bf16"},
		{"bad uploads", Options{Uploads: 9}, 0, 0, "cuda: uploads type dtype(9): want f32, f16 or bf16"},
		{"bad device", Options{Device: -1}, 0, 0, "cuda: device -1: must be 0 or more"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.in.withDefaults()
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Storage != tc.storage || got.Uploads != tc.upld {
				t.Fatalf("storage %v uploads %v, want %v %v", got.Storage, got.Uploads, tc.storage, tc.upld)
			}
		})
	}
}

func TestDeviceInfo_ComputeCapability(t *testing.T) {
	if got := (DeviceInfo{ComputeMajor: 9, ComputeMinor: 0}).ComputeCapability(); got != "9.0" {
		t.Fatalf("got %q", got)
	}
}
