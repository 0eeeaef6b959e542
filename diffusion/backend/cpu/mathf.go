package cpu

import "math"

// expf is exp for float32 arguments, within 1e-7 relative of math.Exp
// (about half an ulp of float32) and faster, because it does float32-range
// work only: Cody-Waite reduction x = k·ln2 + r with |r| <= ln2/2, a
// degree-7 Taylor polynomial for e^r in float64 (truncation error below
// 1e-8 there), and 2^k put straight into the exponent bits. Softmax and
// SiLU spend most of their time here.
func expf(x float32) float32 {
	const (
		log2e = 1.4426950408889634
		ln2hi = 6.93147180369123816490e-01 // ln2 split so k·ln2hi is exact
		ln2lo = 1.90821492927058770002e-10
		under = -87.33654 // exp(under) is the smallest normal float32
		over  = 88.72284  // ln(MaxFloat32)
	)
	switch {
	case x != x:
		return x
	case x < under:
		return 0
	case x > over:
		return float32(math.Inf(1))
	}
	xf := float64(x)
	t := xf*log2e + 0.5
	k := int64(t)
	if t < 0 {
		k-- // floor, for the negative arguments softmax produces
	}
	kf := float64(k)
	r := xf - kf*ln2hi - kf*ln2lo
	p := 1 + r*(1+r*(1.0/2+r*(1.0/6+r*(1.0/24+r*(1.0/120+r*(1.0/720+r*(1.0/5040)))))))
	return float32(p * math.Float64frombits(uint64(k+1023)<<52))
}

// expSub replaces every v in row with exp(v - mx) and returns their sum;
// mx must be at least the row's maximum. It is expf inlined by hand (the
// upper clamp is not needed), which softmax-bound attention notices.
func expSub(row []float32, mx float32) float32 {
	const (
		log2e = 1.4426950408889634
		ln2hi = 6.93147180369123816490e-01
		ln2lo = 1.90821492927058770002e-10
		under = -87.33654
	)
	var sum float64
	for i, v := range row {
		x := v - mx
		if !(x >= under) { // NaN or underflow
			if x != x {
				row[i] = x
				sum += float64(x)
				continue
			}
			row[i] = 0
			continue
		}
		xf := float64(x)
		t := xf*log2e + 0.5
		k := int64(t)
		if t < 0 {
			k--
		}
		kf := float64(k)
		r := xf - kf*ln2hi - kf*ln2lo
		p := 1 + r*(1+r*(1.0/2+r*(1.0/6+r*(1.0/24+r*(1.0/120+r*(1.0/720+r*(1.0/5040)))))))
		e := float32(p * math.Float64frombits(uint64(k+1023)<<52))
		row[i] = e
		sum += float64(e)
	}
	return float32(sum)
}

// rowMax is the largest element of a non-empty row (-Inf for a row that
// is all -Inf).
func rowMax(row []float32) float32 {
	mx := float32(math.Inf(-1))
	for _, v := range row {
		if v > mx {
			mx = v
		}
	}
	return mx
}
