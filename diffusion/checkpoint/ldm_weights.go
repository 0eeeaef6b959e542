package checkpoint

import (
	"fmt"
	"iter"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/latentfarm/latentfarm/diffusion/backend"
	"github.com/latentfarm/latentfarm/diffusion/nn"
	"github.com/latentfarm/latentfarm/diffusion/safetensors"
)

// tensorSource holds a checkpoint's tensors under their stored names.
type tensorSource interface {
	// shape returns the stored shape of key.
	shape(key string) ([]int, bool)
	// load returns rows block part of parts of key (the whole tensor when
	// parts <= 1), on the backend, with the given shape.
	load(key string, part, parts int, shape []int) (*backend.Tensor, error)
}

// fileSource reads tensors from an open safetensors file on demand, so
// weights no model asks for (EMA copies, the dropped OpenCLIP layer) are
// never converted or copied.
type fileSource struct {
	b backend.Backend
	f *safetensors.File
}

func (s fileSource) shape(key string) ([]int, bool) {
	info, ok := s.f.Info(key)
	return info.Shape, ok
}

func (s fileSource) load(key string, part, parts int, shape []int) (*backend.Tensor, error) {
	vals, _, err := s.f.Float32(key)
	if err != nil {
		return nil, err
	}
	if parts > 1 {
		n := len(vals) / parts
		vals = vals[part*n : (part+1)*n]
	}
	return s.b.FromFloat32(vals, shape...), nil
}

// mapSource serves tensors already on the backend.
type mapSource nn.TensorMap

func (s mapSource) shape(key string) ([]int, bool) {
	t, ok := s[key]
	if !ok {
		return nil, false
	}
	return t.Shape(), true
}

func (s mapSource) load(key string, part, parts int, shape []int) (*backend.Tensor, error) {
	if parts > 1 {
		return nil, fmt.Errorf("tensor %q: splitting a fused tensor needs the checkpoint file", key)
	}
	return s[key].Reshape(shape...), nil
}

// mappedWeights serves a model's weights, asked for under their diffusers
// names, from a checkpoint with other names. It is an nn.Maker so that it
// sees the shape the model expects and can report a mismatch with both
// names and both shapes; it never makes up a value.
type mappedWeights struct {
	src   tensorSource
	names mapFunc
	used  map[string]bool // checkpoint keys handed out
}

var (
	_ nn.Weights = (*mappedWeights)(nil)
	_ nn.Maker   = (*mappedWeights)(nil)
)

func newMappedWeights(src tensorSource, names mapFunc) *mappedWeights {
	return &mappedWeights{src: src, names: names, used: map[string]bool{}}
}

// Tensor implements nn.Weights (the loader uses it to probe alternative
// names).
func (w *mappedWeights) Tensor(name string) (*backend.Tensor, error) { return w.resolve(name, nil) }

// Make implements nn.Maker: it returns the stored tensor behind name after
// checking it against shape.
func (w *mappedWeights) Make(name string, shape []int) (*backend.Tensor, error) {
	return w.resolve(name, shape)
}

func (w *mappedWeights) resolve(name string, want []int) (*backend.Tensor, error) {
	ref, ok := w.names(name)
	if !ok {
		return nil, fmt.Errorf("weight %q: no checkpoint key corresponds to it: %w", name, nn.ErrMissingWeight)
	}
	stored, ok := w.src.shape(ref.key)
	if !ok {
		return nil, fmt.Errorf("weight %q (checkpoint key %q): not in the checkpoint: %w", name, ref.key, nn.ErrMissingWeight)
	}
	got := ref.viewShape(stored)
	if want != nil && !slices.Equal(got, want) {
		how := ""
		if ref.parts > 1 {
			how = fmt.Sprintf(" (block %d of %d of its rows)", ref.part+1, ref.parts)
		}
		return nil, fmt.Errorf("weight %q (checkpoint key %q%s): model expects shape %v, checkpoint has %v: %w",
			name, ref.key, how, want, stored, nn.ErrShape)
	}
	if got == nil {
		return nil, fmt.Errorf("weight %q (checkpoint key %q): stored shape %v cannot be split into %d parts: %w",
			name, ref.key, stored, ref.parts, nn.ErrShape)
	}
	t, err := w.src.load(ref.key, ref.part, ref.parts, got)
	if err != nil {
		return nil, fmt.Errorf("weight %q (checkpoint key %q): %w", name, ref.key, err)
	}
	w.used[ref.key] = true
	return t, nil
}

// viewShape is the shape the model sees of a tensor stored as stored: a row
// block of a fused tensor, or a 1x1 kernel seen as a matrix. nil means the
// rows do not split evenly.
func (r ldmRef) viewShape(stored []int) []int {
	s := slices.Clone(stored)
	if r.parts > 1 {
		if len(s) == 0 || s[0]%r.parts != 0 {
			return nil
		}
		s[0] /= r.parts
	}
	if r.squeeze && len(s) == 4 && s[2] == 1 && s[3] == 1 {
		s = s[:2]
	}
	return s
}

// vaeWeightsFromAnyLayout serves a standalone autoencoder file to vae.New
// whatever its naming: diffusers names are used as they are; original LDM
// names (encoder.down.0.block.0..., with or without the first_stage_model.
// prefix of a full checkpoint) are mapped, the level count for the
// decoder's reversed numbering being read from the keys.
func vaeWeightsFromAnyLayout(w nn.TensorMap) nn.Weights {
	prefix := ""
	for key := range w {
		if strings.HasPrefix(key, ldmVAEPrefix) {
			prefix = ldmVAEPrefix
			break
		}
	}
	levels := countIndexed(maps.Keys(w), prefix+"decoder.up.")
	names := func(name string) (ldmRef, bool) {
		if _, ok := w[name]; ok {
			return ldmRef{key: name}, true
		}
		ref, ok := vaeLDMName(levels, name)
		ref.key = prefix + ref.key
		return ref, ok
	}
	return newMappedWeights(mapSource(w), names)
}

// countIndexed returns 1 + the largest N of keys "<prefix>N.<anything>",
// or 0 when there is none.
func countIndexed(keys iter.Seq[string], prefix string) int {
	n := 0
	for key := range keys {
		rest, ok := strings.CutPrefix(key, prefix)
		if !ok {
			continue
		}
		num, _, ok := strings.Cut(rest, ".")
		if i, err := strconv.Atoi(num); ok && err == nil && i+1 > n {
			n = i + 1
		}
	}
	return n
}
