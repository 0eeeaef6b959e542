package conformance

import "math"

// The reference implementations below are deliberately naive float64 loops
// over float32 inputs: each one transcribes the definition of its op and
// nothing else, so a disagreement points at the backend under test.

func f64(v []float32) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = float64(x)
	}
	return out
}

func prod(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

// refMatMul computes alpha·a·op(b) for a [batch, m, k] and b [batch, k, n]
// (or [batch, n, k] when transB).
func refMatMul(a, b []float64, batch, m, n, k int, transB bool, alpha float64) []float64 {
	out := make([]float64, batch*m*n)
	for bi := 0; bi < batch; bi++ {
		for i := 0; i < m; i++ {
			for j := 0; j < n; j++ {
				var s float64
				for p := 0; p < k; p++ {
					bv := b[bi*k*n+p*n+j]
					if transB {
						bv = b[bi*k*n+j*k+p]
					}
					s += a[bi*m*k+i*k+p] * bv
				}
				out[bi*m*n+i*n+j] = alpha * s
			}
		}
	}
	return out
}

// refLinear computes x·wᵀ + b for x [rows, in], w [out, in], bias [out] or nil.
func refLinear(x, w, bias []float64, rows, in, out int) []float64 {
	res := make([]float64, rows*out)
	for r := 0; r < rows; r++ {
		for o := 0; o < out; o++ {
			var s float64
			if bias != nil {
				s = bias[o]
			}
			for i := 0; i < in; i++ {
				s += x[r*in+i] * w[o*in+i]
			}
			res[r*out+o] = s
		}
	}
	return res
}

// convShape describes a direct convolution.
type convShape struct {
	n, cin, h, w   int
	cout, kh, kw   int
	stride         int
	pt, pb, pl, pr int
}

func (c convShape) out() (int, int) {
	return (c.h+c.pt+c.pb-c.kh)/c.stride + 1, (c.w+c.pl+c.pr-c.kw)/c.stride + 1
}

// refConv2D is a direct convolution with zero padding.
func refConv2D(x, w, bias []float64, c convShape) []float64 {
	ho, wo := c.out()
	res := make([]float64, c.n*c.cout*ho*wo)
	for img := 0; img < c.n; img++ {
		for o := 0; o < c.cout; o++ {
			for oy := 0; oy < ho; oy++ {
				for ox := 0; ox < wo; ox++ {
					var s float64
					if bias != nil {
						s = bias[o]
					}
					for ci := 0; ci < c.cin; ci++ {
						for ky := 0; ky < c.kh; ky++ {
							iy := oy*c.stride - c.pt + ky
							if iy < 0 || iy >= c.h {
								continue
							}
							for kx := 0; kx < c.kw; kx++ {
								ix := ox*c.stride - c.pl + kx
								if ix < 0 || ix >= c.w {
									continue
								}
								s += x[((img*c.cin+ci)*c.h+iy)*c.w+ix] * w[((o*c.cin+ci)*c.kh+ky)*c.kw+kx]
							}
						}
					}
					res[((img*c.cout+o)*ho+oy)*wo+ox] = s
				}
			}
		}
	}
	return res
}

// refGroupNorm normalises x [n, ch, spatial] per (image, group) with the
// biased variance, as torch.nn.GroupNorm does.
func refGroupNorm(x, gamma, beta []float64, n, ch, spatial, groups int, eps float64, silu bool) []float64 {
	res := make([]float64, len(x))
	per := ch / groups
	for img := 0; img < n; img++ {
		for g := 0; g < groups; g++ {
			lo := (img*ch + g*per) * spatial
			hi := lo + per*spatial
			mean, variance := meanVar(x[lo:hi])
			for i := lo; i < hi; i++ {
				c := (i / spatial) % ch
				y := (x[i]-mean)/math.Sqrt(variance+eps)*gamma[c] + beta[c]
				if silu {
					y = refSiLU(y)
				}
				res[i] = y
			}
		}
	}
	return res
}

func meanVar(v []float64) (float64, float64) {
	var s float64
	for _, x := range v {
		s += x
	}
	mean := s / float64(len(v))
	var sq float64
	for _, x := range v {
		sq += (x - mean) * (x - mean)
	}
	return mean, sq / float64(len(v))
}

// refLayerNorm normalises every row of length d.
func refLayerNorm(x, gamma, beta []float64, d int, eps float64) []float64 {
	res := make([]float64, len(x))
	for r := 0; r < len(x)/d; r++ {
		mean, variance := meanVar(x[r*d : (r+1)*d])
		for i := 0; i < d; i++ {
			res[r*d+i] = (x[r*d+i]-mean)/math.Sqrt(variance+eps)*gamma[i] + beta[i]
		}
	}
	return res
}

// refSoftmax applies a softmax to every row of length d.
func refSoftmax(x []float64, d int) []float64 {
	res := make([]float64, len(x))
	for r := 0; r < len(x)/d; r++ {
		row := x[r*d : (r+1)*d]
		mx := math.Inf(-1)
		for _, v := range row {
			mx = math.Max(mx, v)
		}
		var s float64
		for i, v := range row {
			res[r*d+i] = math.Exp(v - mx)
			s += res[r*d+i]
		}
		for i := range row {
			res[r*d+i] /= s
		}
	}
	return res
}

// refAttention computes softmax(q·kᵀ/sqrt(d))·v per batch item and head for
// q [b, lq, heads*d] and k, v [b, lk, heads*d]; causal masks key j > query i.
func refAttention(q, k, v []float64, b, lq, lk, heads, dh int, causal bool) []float64 {
	width := heads * dh
	res := make([]float64, b*lq*width)
	scores := make([]float64, lk)
	for bi := 0; bi < b; bi++ {
		for h := 0; h < heads; h++ {
			for i := 0; i < lq; i++ {
				for j := 0; j < lk; j++ {
					if causal && j > i {
						scores[j] = math.Inf(-1)
						continue
					}
					var s float64
					for p := 0; p < dh; p++ {
						s += q[(bi*lq+i)*width+h*dh+p] * k[(bi*lk+j)*width+h*dh+p]
					}
					scores[j] = s / math.Sqrt(float64(dh))
				}
				p := refSoftmax(scores, lk)
				for c := 0; c < dh; c++ {
					var s float64
					for j := 0; j < lk; j++ {
						s += p[j] * v[(bi*lk+j)*width+h*dh+c]
					}
					res[(bi*lq+i)*width+h*dh+c] = s
				}
			}
		}
	}
	return res
}

func refSiLU(x float64) float64      { return x / (1 + math.Exp(-x)) }
func refGELU(x float64) float64      { return 0.5 * x * (1 + math.Erf(x/math.Sqrt2)) }
func refQuickGELU(x float64) float64 { return x / (1 + math.Exp(-1.702*x)) }
func refGELUTanh(x float64) float64 {
	return 0.5 * x * (1 + math.Tanh(math.Sqrt(2/math.Pi)*(x+0.044715*x*x*x)))
}

// refUpsample doubles the last two axes of x [planes, h, w] by repetition.
func refUpsample(x []float64, planes, h, w int) []float64 {
	res := make([]float64, planes*4*h*w)
	for p := 0; p < planes; p++ {
		for y := 0; y < 2*h; y++ {
			for xx := 0; xx < 2*w; xx++ {
				res[(p*2*h+y)*2*w+xx] = x[(p*h+y/2)*w+xx/2]
			}
		}
	}
	return res
}

// unravel turns a flat row-major index into coordinates.
func unravel(i int, shape []int) []int {
	idx := make([]int, len(shape))
	for a := len(shape) - 1; a >= 0; a-- {
		idx[a] = i % shape[a]
		i /= shape[a]
	}
	return idx
}

func ravel(idx, shape []int) int {
	off := 0
	for a := range shape {
		off = off*shape[a] + idx[a]
	}
	return off
}

// refPermute moves input axis perm[i] to output axis i, element by element.
func refPermute(x []float64, shape, perm []int) ([]float64, []int) {
	out := make([]int, len(shape))
	for i, p := range perm {
		out[i] = shape[p]
	}
	res := make([]float64, len(x))
	src := make([]int, len(shape))
	for i := range res {
		idx := unravel(i, out)
		for a, p := range perm {
			src[p] = idx[a]
		}
		res[i] = x[ravel(src, shape)]
	}
	return res, out
}

// refConcat joins tensors along axis, element by element.
func refConcat(axis int, xs [][]float64, shapes [][]int) ([]float64, []int) {
	out := append([]int(nil), shapes[0]...)
	out[axis] = 0
	for _, s := range shapes {
		out[axis] += s[axis]
	}
	res := make([]float64, prod(out))
	for i := range res {
		idx := unravel(i, out)
		t := 0
		for idx[axis] >= shapes[t][axis] {
			idx[axis] -= shapes[t][axis]
			t++
		}
		res[i] = xs[t][ravel(idx, shapes[t])]
	}
	return res, out
}

// refSlice keeps [start, end) of axis, element by element.
func refSlice(x []float64, shape []int, axis, start, end int) ([]float64, []int) {
	out := append([]int(nil), shape...)
	out[axis] = end - start
	res := make([]float64, prod(out))
	for i := range res {
		idx := unravel(i, out)
		idx[axis] += start
		res[i] = x[ravel(idx, shape)]
	}
	return res, out
}
