//go:build cgo && !noopenblas

package cpu

import "testing"

// TestOpenBLAS_IsUsed guards against a cgo build that silently falls back
// to the pure-Go kernel.
func TestOpenBLAS_IsUsed(t *testing.T) {
	if blasGemm == nil {
		t.Fatal("cgo build without OpenBLAS kernel")
	}
	a, b, c := []float32{1, 2, 3, 4}, []float32{5, 6, 7, 8}, make([]float32, 4)
	serialGemm(false, 2, 2, 2, 1, a, 2, b, 2, 0, c, 2)
	want := []float32{19, 22, 43, 50}
	for i := range want {
		if c[i] != want[i] {
			t.Fatalf("serialGemm = %v, want %v", c, want)
		}
	}
}
