package nn

import (
	"fmt"

	"github.com/latentfarm/latentfarm/diffusion/backend"
	"github.com/latentfarm/latentfarm/diffusion/safetensors"
)

// LoadSafetensors reads every floating-point tensor of a safetensors file
// onto b, converting f16 and bf16 to what the backend stores. Integer
// tensors (such as CLIP's position_ids) are skipped: no model reads them.
func LoadSafetensors(b backend.Backend, path string) (TensorMap, error) {
	f, err := safetensors.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	m := TensorMap{}
	for _, name := range f.Names() {
		info, _ := f.Info(name)
		if !isFloat(info.DType) {
			continue
		}
		vals, shape, err := f.Float32(name)
		if err != nil {
			return nil, fmt.Errorf("nn: %w", err)
		}
		m[name] = b.FromFloat32(vals, shape...)
	}
	return m, nil
}

func isFloat(d safetensors.DType) bool {
	return d == safetensors.F32 || d == safetensors.F16 || d == safetensors.BF16 || d == safetensors.F64
}
