//go:build cuda

package gpuinfo

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

// TestNVML_Open_LibraryAbsent runs everywhere: NVML at a path that does not
// exist fails with ErrNotFound, and a message naming the library.
func TestNVML_Open_LibraryAbsent(t *testing.T) {
	for _, tc := range []struct {
		name, path string
	}{
		{"missing file", filepath.Join(t.TempDir(), Library)},
		{"not a library", "/etc/hostname"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, err := OpenLibrary(tc.path)
			if err == nil {
				n.Close()
				t.Fatalf("OpenLibrary(%q) succeeded; want ErrNotFound", tc.path)
			}
			if !errors.Is(err, ErrNotFound) {
				t.Errorf("err = %v; want ErrNotFound", err)
			}
			if want := "libnvidia-ml.so.1 not found"; !strings.Contains(err.Error(), want) {
				t.Errorf("err = %q; want it to say %q", err, want)
			}
		})
	}
}

// TestNVML_Open_ThisMachine opens the real NVML: on a machine without a GPU
// it must fail cleanly (no library, or a library with no driver behind it);
// on a GPU machine every device must be described.
func TestNVML_Open_ThisMachine(t *testing.T) {
	n, err := Open()
	if err != nil {
		if !strings.HasPrefix(err.Error(), "nvml: ") {
			t.Errorf("err = %q; want it to start with \"nvml: \"", err)
		}
		t.Logf("no NVML here: %v", err)
		return
	}
	defer func() {
		if err := n.Close(); err != nil {
			t.Error(err)
		}
		if err := n.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
	}()
	driver, err := n.Driver()
	if err != nil || driver == "" {
		t.Errorf("Driver() = %q, %v; want a version", driver, err)
	}
	devs, err := n.Devices()
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range devs {
		if d.Name == "" || !strings.HasPrefix(d.UUID, "GPU-") || d.ComputeCapability == "" ||
			d.TotalBytes <= 0 || d.FreeBytes < 0 || d.FreeBytes > d.TotalBytes {
			t.Errorf("device %+v: want a name, a GPU- uuid, a compute capability and 0 <= free <= total", d)
		}
		free, err := n.Free(d.Index)
		if err != nil || free < 0 || free > d.TotalBytes {
			t.Errorf("Free(%d) = %d, %v", d.Index, free, err)
		}
	}
	t.Logf("NVML: driver %s, %d GPU(s): %+v", driver, len(devs), devs)
}
