package safetensors

import (
	"math"
	"testing"
)

func TestFloat16ToFloat32(t *testing.T) {
	tests := []struct {
		h    uint16
		want float64
	}{
		{0x0000, 0}, {0x3c00, 1}, {0xc000, -2}, {0x7bff, 65504},
		{0x0001, math.Ldexp(1, -24)},    // smallest subnormal
		{0x03ff, math.Ldexp(1023, -24)}, // largest subnormal
		{0x0400, math.Ldexp(1, -14)},    // smallest normal
		{0x3555, 0.333251953125},        // 1/3 rounded
		{0x7c00, math.Inf(1)}, {0xfc00, math.Inf(-1)},
	}
	for _, tc := range tests {
		if got := Float16ToFloat32(tc.h); float64(got) != tc.want {
			t.Errorf("Float16ToFloat32(%#04x) = %g, want %g", tc.h, got, tc.want)
		}
	}
	if got := Float16ToFloat32(0x8000); got != 0 || !math.Signbit(float64(got)) {
		t.Errorf("Float16ToFloat32(0x8000) = %g, want -0", got)
	}
	if got := Float16ToFloat32(0x7e00); !math.IsNaN(float64(got)) {
		t.Errorf("Float16ToFloat32(0x7e00) = %g, want NaN", got)
	}
}

// TestFloat16_RoundTripAll checks every f16 bit pattern survives f16->f32->f16.
func TestFloat16_RoundTripAll(t *testing.T) {
	for h := 0; h < 1<<16; h++ {
		f := Float16ToFloat32(uint16(h))
		back := Float32ToFloat16(f)
		if math.IsNaN(float64(f)) {
			if back&0x7c00 != 0x7c00 || back&0x3ff == 0 {
				t.Fatalf("NaN %#04x came back as %#04x", h, back)
			}
			continue
		}
		if back != uint16(h) {
			t.Fatalf("%#04x -> %g -> %#04x", h, f, back)
		}
	}
}

func TestFloat32ToFloat16_Rounding(t *testing.T) {
	tests := []struct {
		f    float64
		want uint16
	}{
		{1 + math.Ldexp(1, -11), 0x3c00},                      // tie, even stays
		{1 + 3*math.Ldexp(1, -11), 0x3c02},                    // tie, rounds up to even
		{1 + math.Ldexp(1, -11) + math.Ldexp(1, -20), 0x3c01}, // just above tie
		{65519, 0x7bff}, {65520, 0x7c00}, {1e10, 0x7c00}, // overflow
		{math.Ldexp(1, -25), 0x0000},                           // tie with 0: even
		{math.Ldexp(1.5, -25), 0x0001},                         // above tie
		{math.Ldexp(3, -25), 0x0002},                           // tie 1.5 ulp: even
		{math.Ldexp(1023.5, -24), 0x0400},                      // subnormal carries to normal
		{math.Ldexp(1, -30), 0}, {-math.Ldexp(1, -30), 0x8000}, // underflow keeps sign
	}
	for _, tc := range tests {
		if got := Float32ToFloat16(float32(tc.f)); got != tc.want {
			t.Errorf("Float32ToFloat16(%g) = %#04x, want %#04x", tc.f, got, tc.want)
		}
	}
}

func TestBFloat16(t *testing.T) {
	tests := []struct {
		f    float32
		want uint16
	}{
		{1, 0x3f80}, {-2, 0xc000},
		{math.Float32frombits(0x3f808000), 0x3f80}, // tie, even stays
		{math.Float32frombits(0x3f818000), 0x3f82}, // tie, rounds up
		{math.Float32frombits(0x3f808001), 0x3f81},
		{math.MaxFloat32, 0x7f80},
	}
	for _, tc := range tests {
		if got := Float32ToBFloat16(tc.f); got != tc.want {
			t.Errorf("Float32ToBFloat16(%g) = %#04x, want %#04x", tc.f, got, tc.want)
		}
		if tc.want != 0x7f80 && BFloat16ToFloat32(tc.want) != math.Float32frombits(uint32(tc.want)<<16) {
			t.Errorf("BFloat16ToFloat32(%#04x) wrong", tc.want)
		}
	}
	if got := Float32ToBFloat16(float32(math.NaN())); got&0x7f80 != 0x7f80 || got&0x7f == 0 {
		t.Errorf("NaN -> %#04x", got)
	}
}
