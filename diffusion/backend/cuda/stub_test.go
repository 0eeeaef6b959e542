//go:build !cuda

package cuda

import (
	"errors"
	"testing"
)

func TestNew_WithoutCUDA(t *testing.T) {
	b, err := New(Options{})
	if b != nil || !errors.Is(err, ErrNoCUDA) {
		t.Fatalf("New = %v, %v; want nil, ErrNoCUDA", b, err)
	}
	if want := "cuda: built without CUDA support: rebuild with -tags cuda"; err.Error() != want {
		t.Fatalf("error %q, want %q", err, want)
	}
	if _, err := Devices(); !errors.Is(err, ErrNoCUDA) {
		t.Fatalf("Devices: %v, want ErrNoCUDA", err)
	}
}
