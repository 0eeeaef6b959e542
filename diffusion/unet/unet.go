package unet

import (
	"fmt"

	"github.com/latentfarm/latentfarm/diffusion/backend"
	"github.com/latentfarm/latentfarm/diffusion/nn"
)

// UNet is a loaded UNet2DConditionModel. It holds no per-call state, so one
// UNet may run forwards from several goroutines if its backend allows.
type UNet struct {
	cfg     Config
	timeEmb timeEmbedding
	convIn  nn.Conv2d
	down    []downBlock
	mid     midBlock
	up      []upBlock
	normOut nn.GroupNorm
	convOut nn.Conv2d
	featDim int
}

// New validates cfg and loads the UNet's weights from w under their
// diffusers names, on the backend the weights live on.
func New(cfg Config, w nn.Weights) (*UNet, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	l := nn.NewLoader(w)
	u := build(cfg, l)
	if err := l.Err(); err != nil {
		return nil, fmt.Errorf("unet: %w", err)
	}
	return u, nil
}

// build lays out the whole model, loading every layer from l; cfg must be
// valid.
func build(cfg Config, l weightLoader) *UNet {
	ch0 := cfg.BlockOutChannels[0]
	temb := cfg.TimeEmbedDim()
	u := &UNet{
		cfg:     cfg,
		featDim: ch0,
		timeEmb: loadTimeEmbedding(l, ch0, temb),
		convIn:  l.Conv2d("conv_in", cfg.InChannels, ch0, cfg.ConvInKernel, 1, cfg.ConvInKernel/2),
	}
	in := ch0
	for i := range cfg.Levels() {
		d := loadDownBlock(l, cfg, i, in, temb)
		u.down = append(u.down, d)
		in = cfg.BlockOutChannels[i]
	}
	u.mid = loadMidBlock(l, cfg, temb)
	prev := cfg.BlockOutChannels[cfg.Levels()-1]
	for i := range cfg.Levels() {
		u.up = append(u.up, loadUpBlock(l, cfg, i, prev, temb))
		prev = cfg.BlockOutChannels[cfg.Levels()-1-i]
	}
	u.normOut = l.GroupNorm("conv_norm_out", ch0, cfg.NormNumGroups, float32(cfg.NormEps))
	u.convOut = l.Conv2d("conv_out", ch0, cfg.OutChannels, cfg.ConvOutKernel, 1, cfg.ConvOutKernel/2)
	return u
}

// Config returns the config the UNet was built from.
func (u *UNet) Config() Config { return u.cfg }

// Forward predicts the noise (or v) for latents x [N, in_channels, H, W] at
// the given timesteps (one per batch item, or one for all; fractional
// values are fine) conditioned on context [N, L, cross_attention_dim], and
// returns [N, out_channels, H, W]. Any H, W work; sizes that do not halve
// evenly at every level are resized as diffusers does. Inputs that do not
// fit the model panic, as backend ops do.
func (u *UNet) Forward(b backend.Backend, x *backend.Tensor, timesteps []float64, context *backend.Tensor) *backend.Tensor {
	u.checkInputs(x, timesteps, context)
	emb := u.embedTime(b, timesteps, x.Dim(0))
	temb := b.Activate(emb, backend.SiLU) // every resnet applies SiLU first
	b.Release(emb)

	h := u.convIn.Forward(b, x)
	states := []*backend.Tensor{h}
	for _, d := range u.down {
		states = append(states, d.forward(b, states[len(states)-1], temb, context)...)
	}
	h = u.mid.forward(b, states[len(states)-1], temb, context)

	for _, blk := range u.up {
		k := len(blk.resnets)
		skips := states[len(states)-k:]
		states = states[:len(states)-k]
		var next *backend.Tensor
		if len(states) > 0 {
			next = states[len(states)-1]
		}
		o := blk.forward(b, h, skips, next, temb, context)
		b.Release(h)
		h = o
	}
	b.Release(temb)

	n := u.normOut.Forward(b, h, true)
	b.Release(h)
	out := u.convOut.Forward(b, n)
	b.Release(n)
	return out
}

// embedTime turns timesteps into the time embedding [n, time_embed_dim].
func (u *UNet) embedTime(b backend.Backend, timesteps []float64, n int) *backend.Tensor {
	ts := timesteps
	if len(ts) == 1 && n > 1 {
		ts = make([]float64, n)
		for i := range ts {
			ts[i] = timesteps[0]
		}
	}
	feats := b.FromFloat32(TimestepFeatures(ts, u.featDim, u.cfg.FlipSinToCos, u.cfg.FreqShift), n, u.featDim)
	emb := u.timeEmb.forward(b, feats)
	b.Release(feats)
	return emb
}

func (u *UNet) checkInputs(x *backend.Tensor, timesteps []float64, context *backend.Tensor) {
	if x.Rank() != 4 || x.Dim(1) != u.cfg.InChannels {
		panic(fmt.Sprintf("unet: Forward: latents %v, want [N, %d, H, W]", x.Shape(), u.cfg.InChannels))
	}
	n := x.Dim(0)
	if len(timesteps) != 1 && len(timesteps) != n {
		panic(fmt.Sprintf("unet: Forward: %d timesteps for a batch of %d", len(timesteps), n))
	}
	if context.Rank() != 3 || context.Dim(0) != n || context.Dim(2) != u.cfg.CrossAttentionDim {
		panic(fmt.Sprintf("unet: Forward: context %v, want [%d, L, %d]", context.Shape(), n, u.cfg.CrossAttentionDim))
	}
}
