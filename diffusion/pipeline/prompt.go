package pipeline

import (
	"fmt"

	"github.com/latentfarm/latentfarm/diffusion/backend"
)

// promptCacheSize is how many encoded prompts a Pipeline keeps: enough for
// the two keys of an animation chunk with their negative prompts, twice.
const promptCacheSize = 8

// promptKey identifies one text-encoder output.
type promptKey struct {
	text     string
	clipSkip int
}

// promptCache keeps the most recently used text-encoder outputs, the most
// recent first. Its tensors are shared: callers must not release them.
type promptCache struct {
	keys    []promptKey
	embeds  []*backend.Tensor
	encodes int // how many times the text encoder ran
}

// get returns the cached embedding of k, moving it to the front.
func (c *promptCache) get(k promptKey) (*backend.Tensor, bool) {
	for i, key := range c.keys {
		if key == k {
			e := c.embeds[i]
			copy(c.keys[1:i+1], c.keys[:i])
			copy(c.embeds[1:i+1], c.embeds[:i])
			c.keys[0], c.embeds[0] = k, e
			return e, true
		}
	}
	return nil, false
}

// put adds an embedding at the front, dropping the least recently used
// one when full. The dropped tensor is left to the garbage collector (both
// backends reclaim unreferenced tensors) rather than released, so that a
// run still holding it cannot be broken by an eviction.
func (c *promptCache) put(k promptKey, e *backend.Tensor) {
	if len(c.keys) < promptCacheSize {
		c.keys = append(c.keys, promptKey{})
		c.embeds = append(c.embeds, nil)
	}
	copy(c.keys[1:], c.keys[:len(c.keys)-1])
	copy(c.embeds[1:], c.embeds[:len(c.embeds)-1])
	c.keys[0], c.embeds[0] = k, e
}

// Encodes returns how many times the pipeline ran its text encoder; prompts
// found in its cache of recent prompts do not count.
func (p *Pipeline) Encodes() int { return p.prompts.encodes }

// encodePrompt returns the embedding [1, 77, D] of text, from the cache
// when it was encoded recently with the same clip skip.
func (p *Pipeline) encodePrompt(text string, clipSkip int) (*backend.Tensor, error) {
	k := promptKey{text, clipSkip}
	if e, ok := p.prompts.get(k); ok {
		return e, nil
	}
	e, err := p.m.TextEncoder.Encode(p.b, [][]int{p.m.Tokenizer.EncodePadded(text)}, clipSkip)
	if err != nil {
		return nil, fmt.Errorf("pipeline: text encoder: %w", err)
	}
	p.prompts.encodes++
	p.prompts.put(k, e)
	return e, nil
}

// promptEmbeds returns the prompt's embedding and, when guided, the
// negative prompt's. Like diffusers 0.27, clip skip applies to the prompt
// only, not to the negative prompt.
func (p *Pipeline) promptEmbeds(prompt, negative string, clipSkip int, guided bool) (cond, uncond *backend.Tensor, err error) {
	if cond, err = p.encodePrompt(prompt, clipSkip); err != nil || !guided {
		return cond, nil, err
	}
	uncond, err = p.encodePrompt(negative, 0)
	return cond, uncond, err
}

// conditioning returns the UNet's text batch: [negative, prompt] when
// guided (the order diffusers uses), else [prompt].
func (p *Pipeline) conditioning(cond, uncond *backend.Tensor) *backend.Tensor {
	if uncond == nil {
		return cond
	}
	return p.b.Concat(0, uncond, cond)
}
