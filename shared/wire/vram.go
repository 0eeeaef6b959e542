package wire

import "strings"

// Model families and precisions.
const (
	FamilySD1     = "sd1"
	FamilySD2     = "sd2"
	FamilySDXL    = "sdxl"
	FamilyTiny    = "tiny"
	PrecisionFP16 = "fp16"
	PrecisionBF16 = "bf16"
	PrecisionFP32 = "fp32"
)

// family holds the few numbers the VRAM estimate needs.
type family struct {
	params       float64 // UNet + VAE + text encoders
	latentDiv    int     // image pixels per latent pixel, per side
	heads        int     // attention heads at the highest-resolution attention
	attnTokenDiv int     // latent tokens per token at that attention (4: one level down)
	channels     int     // UNet channels at full latent resolution
	vaeChannels  int     // VAE decoder channels at full image resolution
}

// families: SD1.5 UNet 860M + VAE 84M + CLIP ViT-L 123M; SD2 UNet 865M +
// OpenCLIP ViT-H text 354M; SDXL UNet 2.6B + CLIP-L + OpenCLIP bigG 695M, no
// attention at full latent resolution; tiny is the project's test model
// (sd-tiny fixtures: latents at 1/2 size, 32 channels, 8 heads).
var families = map[string]family{
	FamilySD1:  {params: 1.07e9, latentDiv: 8, heads: 8, attnTokenDiv: 1, channels: 320, vaeChannels: 128},
	FamilySD2:  {params: 1.30e9, latentDiv: 8, heads: 5, attnTokenDiv: 1, channels: 320, vaeChannels: 128},
	FamilySDXL: {params: 3.50e9, latentDiv: 8, heads: 10, attnTokenDiv: 4, channels: 320, vaeChannels: 128},
	FamilyTiny: {params: 1.2e6, latentDiv: 2, heads: 8, attnTokenDiv: 1, channels: 32, vaeChannels: 16},
}

var precisionBytes = map[string]int64{PrecisionFP16: 2, PrecisionBF16: 2, PrecisionFP32: 4}

// runtimeOverhead is memory a render process holds beyond tensors (CUDA
// context, allocator slack, workspaces).
const runtimeOverhead = 256 << 20

// activationTensors is about how many full-resolution UNet activations are
// live at the peak of a forward pass (skip connections kept for the decoder).
const activationTensors = 40

// GuessFamily guesses a model family from a model name: "xl" names SDXL,
// "sd2"/"v2"/"2-1"/"2.1" SD2, "tiny" the test model, anything else SD1.
func GuessFamily(model string) string {
	m := strings.ToLower(model)
	switch {
	case strings.Contains(m, "tiny"):
		return FamilyTiny
	case strings.Contains(m, "xl"):
		return FamilySDXL
	case strings.Contains(m, "sd2"), strings.Contains(m, "v2"), strings.Contains(m, "2-1"),
		strings.Contains(m, "2.1"), strings.Contains(m, "2-0"), strings.Contains(m, "2.0"):
		return FamilySD2
	}
	return FamilySD1
}

// EstimateVRAM estimates the peak bytes a render of batch images of
// width x height with classifier-free guidance needs for a model of family
// at precision: weights, attention scores at the largest attention level
// (naive attention, all heads at once), live UNet activations, the VAE
// decoder at full resolution, and runtime overhead. Unknown family or
// precision yields -1. The estimate errs high: a node must never take a task
// that does not fit.
func EstimateVRAM(familyName, precision string, width, height, batch int) int64 {
	f, ok := families[familyName]
	pb, okp := precisionBytes[precision]
	if !ok || !okp || width <= 0 || height <= 0 || batch <= 0 {
		return -1
	}
	lat := int64(width/f.latentDiv) * int64(height/f.latentDiv)
	tokens := lat / int64(f.attnTokenDiv)
	const guidance = 2 // conditional and unconditional pass together
	perImage := int64(f.heads)*tokens*tokens*pb + lat*int64(f.channels)*activationTensors*pb
	vae := int64(width) * int64(height) * int64(f.vaeChannels) * 4 * pb
	weights := int64(f.params * float64(pb))
	return weights + int64(batch)*(guidance*perImage+vae) + runtimeOverhead
}

// VRAMEstimate is EstimateVRAM for one image of the (normalized) spec.
func (s *JobSpec) VRAMEstimate() int64 {
	return EstimateVRAM(s.ModelFamily, s.Precision, s.Width, s.Height, 1)
}
