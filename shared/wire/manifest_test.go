package wire

import "testing"

func TestFrameSet_AddsOnlyAJobsOwnFrames(t *testing.T) {
	var s FrameSet
	for _, tc := range []struct {
		f    ManifestFrame
		want bool
	}{
		{ManifestFrame{Index: 70, Key: FrameKey("j1", 70)}, true},
		{ManifestFrame{Index: 3, Key: FrameKey("j2", 3)}, false},
		{ManifestFrame{Index: -1, Key: FrameKey("j1", -1)}, false},
		{ManifestFrame{Index: MaxFrames, Key: FrameKey("j1", MaxFrames)}, false},
	} {
		if got := s.AddFrame("j1", tc.f); got != tc.want {
			t.Errorf("AddFrame(%+v) = %v, want %v", tc.f, got, tc.want)
		}
	}
	if !s.Has(70) || s.Has(69) || s.Has(3) || s.Has(-1) || s.Has(1<<30) || s.Bound() != 128 {
		t.Errorf("set holds 70 only up to 128: Has(70)=%v Has(69)=%v Has(3)=%v Bound=%d", s.Has(70), s.Has(69), s.Has(3), s.Bound())
	}
}
