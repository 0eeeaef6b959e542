package kernels

import (
	"slices"
	"testing"
)

// TestEntries checks that every kernel the CUDA backend launches is in the
// embedded PTX, so a renamed kernel fails here and not on a GPU machine.
func TestEntries(t *testing.T) {
	want := map[string][]string{
		"attention":   {"attention_d32", "attention_d64", "attention_d128", "attention_d160"},
		"conv":        {"im2col"},
		"elementwise": {"cast", "activate", "geglu", "add", "mul", "scale", "lincomb4", "add_bcast"},
		"layout":      {"upsample2x", "copy_axis", "permute6"},
		"norm":        {"group_norm", "layer_norm"},
		"softmax":     {"softmax"},
	}
	fams := Families()
	for fam, names := range want {
		if !slices.Contains(fams, fam) {
			t.Errorf("family %q missing from %v", fam, fams)
			continue
		}
		ptx, err := PTX(fam)
		if err != nil {
			t.Fatal(err)
		}
		got := Entries(ptx)
		for _, n := range names {
			if !slices.Contains(got, n) {
				t.Errorf("%s.ptx has no entry %q (it has %v)", fam, n, got)
			}
		}
	}
	if _, err := PTX("nope"); err == nil {
		t.Error("PTX of an unknown family did not fail")
	}
}
