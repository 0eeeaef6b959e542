package pipeline

import (
	"context"
	"slices"
	"testing"

	"github.com/latentfarm/latentfarm/diffusion/backend/cpu"
)

// sameRender reports whether two results are byte-identical.
func sameRender(a, b *Result) bool {
	return slices.Equal(a.Latents, b.Latents) && slices.Equal(a.Image.Pix, b.Image.Pix)
}

func TestGenerate_InterpEndpoints(t *testing.T) {
	m := loadModel(t, "model")
	ctx := context.Background()
	for _, sampler := range []string{"euler_a", "dpmpp_2m"} {
		t.Run(sampler, func(t *testing.T) {
			p := New(cpu.New(), m)
			base := Request{Prompt: "a photo of a cat", NegativePrompt: "blurry", Width: 16, Height: 16,
				Steps: 6, CFGScale: 7.5, Sampler: sampler, Seed: 1934}
			keyB := base
			keyB.Prompt, keyB.NegativePrompt, keyB.Seed = "a photo of a dog", "dark", 77
			wantA, err := p.TextToImage(ctx, base, nil)
			if err != nil {
				t.Fatal(err)
			}
			wantB, err := p.TextToImage(ctx, keyB, nil)
			if err != nil {
				t.Fatal(err)
			}
			frame := func(tt float64, slerp bool) *Result {
				req := base
				req.Interp = &Interpolation{Prompt: keyB.Prompt, NegativePrompt: keyB.NegativePrompt,
					Seed: keyB.Seed, T: tt, SlerpEmbeddings: slerp}
				res, err := p.Generate(ctx, req, nil)
				if err != nil {
					t.Fatal(err)
				}
				return res
			}
			if !sameRender(frame(0, false), wantA) {
				t.Error("T = 0 differs from the text-to-image render of the first key")
			}
			if !sameRender(frame(1, true), wantB) {
				t.Error("T = 1 differs from the text-to-image render of the second key")
			}
			mid, midSlerp := frame(0.5, false), frame(0.5, true)
			if sameRender(mid, wantA) || sameRender(mid, wantB) {
				t.Error("T = 0.5 renders one of the keys")
			}
			if sameRender(mid, midSlerp) {
				t.Error("slerped and lerped embeddings render the same frame")
			}
			if got := frame(0.5, false); !sameRender(got, mid) {
				t.Error("the same in-between frame renders differently twice")
			}
		})
	}
}

// TestGenerate_InterpSameKeys checks the in-between path against
// text-to-image where their math must agree: between two equal keys the
// slerp takes its linear fallback, (1-0.5)*a + 0.5*a = a exactly, the lerp
// of equal embeddings is exact, and ancestral step noise comes from Seed's
// generator after its first draw, as in text-to-image.
func TestGenerate_InterpSameKeys(t *testing.T) {
	p := New(cpu.New(), loadModel(t, "model"))
	req := Request{Prompt: "a photo of a cat", Width: 16, Height: 16, Steps: 6, CFGScale: 7.5, Sampler: "euler_a", Seed: 5}
	want, err := p.TextToImage(context.Background(), req, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Interp = &Interpolation{Prompt: req.Prompt, Seed: req.Seed, T: 0.5}
	got, err := p.Generate(context.Background(), req, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !sameRender(got, want) {
		t.Error("an in-between of two equal keys differs from their text-to-image render")
	}
}

// TestPipeline_Encodes renders four in-between frames of the same two keys:
// the text encoder must run once per distinct prompt (two prompts and the
// shared empty negative prompt).
func TestPipeline_Encodes(t *testing.T) {
	p := New(cpu.New(), loadModel(t, "model"))
	if n := p.Encodes(); n != 0 {
		t.Fatalf("a new pipeline has encoded %d prompts", n)
	}
	for _, tt := range []float64{0.2, 0.4, 0.6, 0.8} {
		_, err := p.Generate(context.Background(), Request{Prompt: "a photo of a cat", Width: 16, Height: 16,
			Steps: 2, CFGScale: 7.5, Sampler: "euler", Seed: 1,
			Interp: &Interpolation{Prompt: "a photo of a dog", Seed: 2, T: tt}}, nil)
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := p.Encodes(); n != 3 {
		t.Errorf("4 frames between two keys ran the text encoder %d times, want 3", n)
	}
	// A key rendered on its own reuses the cached embeddings too.
	if _, err := p.Generate(context.Background(), Request{Prompt: "a photo of a dog", Width: 16, Height: 16,
		Steps: 2, CFGScale: 7.5, Sampler: "euler", Seed: 2}, nil); err != nil {
		t.Fatal(err)
	}
	if n := p.Encodes(); n != 3 {
		t.Errorf("after rendering a cached key the encoder ran %d times, want 3", n)
	}
}

func TestPromptCache_Eviction(t *testing.T) {
	var c promptCache
	for i := range promptCacheSize + 1 {
		c.put(promptKey{text: string(rune('a' + i))}, nil)
	}
	if _, ok := c.get(promptKey{text: "a"}); ok {
		t.Error("the least recently used prompt was kept beyond the cache size")
	}
	// Using "b" makes "c" the least recently used: the next put drops it.
	if _, ok := c.get(promptKey{text: "b"}); !ok {
		t.Fatal("prompt b was dropped too early")
	}
	c.put(promptKey{text: "z"}, nil)
	if _, ok := c.get(promptKey{text: "c"}); ok {
		t.Error("prompt c outlived a more recently used prompt")
	}
	if _, ok := c.get(promptKey{text: "b"}); !ok {
		t.Error("the recently used prompt b was dropped")
	}
	if _, ok := c.get(promptKey{text: "b", clipSkip: 1}); ok {
		t.Error("a prompt is found under another clip skip")
	}
	if len(c.keys) != promptCacheSize {
		t.Errorf("cache holds %d prompts, want %d", len(c.keys), promptCacheSize)
	}
}
