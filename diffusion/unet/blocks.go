package unet

import (
	"fmt"

	"github.com/latentfarm/latentfarm/diffusion/backend"
)

// downBlock is CrossAttnDownBlock2D (attns set) or DownBlock2D: resnets,
// each optionally followed by a transformer, then a stride-2 conv except at
// the last level.
type downBlock struct {
	resnets []resnet
	attns   []*transformer
	down    *downsample
}

func loadDownBlock(l weightLoader, cfg Config, i, in, temb int) downBlock {
	prefix := fmt.Sprintf("down_blocks.%d", i)
	out := cfg.BlockOutChannels[i]
	var d downBlock
	for j := range cfg.LayersPerBlock.At(i) {
		ch := out
		if j == 0 {
			ch = in
		}
		d.resnets = append(d.resnets, loadResnet(l, fmt.Sprintf("%s.resnets.%d", prefix, j), ch, out, temb, cfg, cfg.ResnetOutScaleFactor))
		if cfg.DownBlockTypes[i] == CrossAttnDownBlock {
			d.attns = append(d.attns, loadTransformer(l, fmt.Sprintf("%s.attentions.%d", prefix, j), out, cfg.Heads(i), cfg.TransformerLayersPerBlock.At(i), cfg))
		}
	}
	if i < cfg.Levels()-1 {
		ds := loadDownsample(l, prefix+".downsamplers.0", out, cfg.DownsamplePadding)
		d.down = &ds
	}
	return d
}

// forward returns the block's output states, the skip connections of the
// up path; the last one is the input of the next level. x is left alone.
func (d downBlock) forward(b backend.Backend, x, temb, ctx *backend.Tensor) []*backend.Tensor {
	var states []*backend.Tensor
	h := x
	for j, r := range d.resnets {
		h = r.forward(b, h, temb)
		if d.attns != nil {
			a := d.attns[j].forward(b, h, ctx)
			b.Release(h)
			h = a
		}
		states = append(states, h)
	}
	if d.down != nil {
		states = append(states, d.down.forward(b, h))
	}
	return states
}

// midBlock is UNetMidBlock2DCrossAttn: resnet, transformer, resnet.
type midBlock struct {
	resnet1, resnet2 resnet
	attn             *transformer
}

func loadMidBlock(l weightLoader, cfg Config, temb int) midBlock {
	last := cfg.Levels() - 1
	ch := cfg.BlockOutChannels[last]
	return midBlock{
		resnet1: loadResnet(l, "mid_block.resnets.0", ch, ch, temb, cfg, cfg.MidBlockScaleFactor),
		attn:    loadTransformer(l, "mid_block.attentions.0", ch, cfg.Heads(last), cfg.TransformerLayersPerBlock.At(last), cfg),
		resnet2: loadResnet(l, "mid_block.resnets.1", ch, ch, temb, cfg, cfg.MidBlockScaleFactor),
	}
}

func (m midBlock) forward(b backend.Backend, x, temb, ctx *backend.Tensor) *backend.Tensor {
	h := m.resnet1.forward(b, x, temb)
	a := m.attn.forward(b, h, ctx)
	b.Release(h)
	out := m.resnet2.forward(b, a, temb)
	b.Release(a)
	return out
}

// upBlock is CrossAttnUpBlock2D (attns set) or UpBlock2D: layers_per_block+1
// resnets, each fed the concatenation of the running state and one skip
// connection, optionally followed by a transformer, then a 2x upsample
// except at the last block.
type upBlock struct {
	resnets []resnet
	attns   []*transformer
	up      *upsample
}

// loadUpBlock loads up block i, which mirrors down level cfg.Levels()-1-i;
// prevOut is the channel count coming from the block below.
func loadUpBlock(l weightLoader, cfg Config, i, prevOut, temb int) upBlock {
	n := cfg.Levels()
	level := n - 1 - i
	prefix := fmt.Sprintf("up_blocks.%d", i)
	out := cfg.BlockOutChannels[level]
	skipIn := cfg.BlockOutChannels[max(level-1, 0)] // channels of the deepest skip of the level above
	layers := cfg.LayersPerBlock.At(level) + 1
	var u upBlock
	for j := range layers {
		skip := out
		if j == layers-1 {
			skip = skipIn
		}
		in := out
		if j == 0 {
			in = prevOut
		}
		u.resnets = append(u.resnets, loadResnet(l, fmt.Sprintf("%s.resnets.%d", prefix, j), in+skip, out, temb, cfg, cfg.ResnetOutScaleFactor))
		if cfg.UpBlockTypes[i] == CrossAttnUpBlock {
			u.attns = append(u.attns, loadTransformer(l, fmt.Sprintf("%s.attentions.%d", prefix, j), out, cfg.Heads(level), cfg.TransformerLayersPerBlock.At(level), cfg))
		}
	}
	if i < n-1 {
		up := loadUpsample(l, prefix+".upsamplers.0", out)
		u.up = &up
	}
	return u
}

// forward consumes skips (the last len(resnets) down states, deepest last)
// and releases them; x is left alone. When the block upsamples, the result
// is sized like next, the skip the following block takes first.
func (u upBlock) forward(b backend.Backend, x *backend.Tensor, skips []*backend.Tensor, next, temb, ctx *backend.Tensor) *backend.Tensor {
	h := x
	for j, r := range u.resnets {
		s := skips[len(skips)-1-j]
		cat := b.Concat(1, h, s)
		b.Release(s)
		if h != x {
			b.Release(h)
		}
		h = r.forward(b, cat, temb)
		b.Release(cat)
		if u.attns != nil {
			a := u.attns[j].forward(b, h, ctx)
			b.Release(h)
			h = a
		}
	}
	if u.up != nil {
		o := u.up.forward(b, h, next.Dim(2), next.Dim(3))
		b.Release(h)
		h = o
	}
	return h
}
