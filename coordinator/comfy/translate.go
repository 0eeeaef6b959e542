package comfy

import (
	"context"
	"encoding/json"
	"path"
	"slices"
	"strings"

	"github.com/latentfarm/latentfarm/shared/wire"
)

// plan is what a valid workflow becomes: one batch job, and what ComfyUI's
// messages about its run name.
type plan struct {
	spec    wire.JobSpec
	outputs []outputNode
	// pre are the nodes that run before the sampler, post those after it,
	// each in execution order.
	pre, post []string
	sampler   string
	classes   map[string]string // node id -> class name
	// fields maps a spec field (its name before any [ or .) to the node
	// input it came from, so the farm's own validation errors name nodes.
	fields map[string]fieldRef
	w      *workflow
	outs   []string
}

// outputNode is a SaveImage or PreviewImage node.
type outputNode struct {
	Node   string `json:"node"`
	Type   string `json:"type"` // "output" (SaveImage) or "temp" (PreviewImage)
	Prefix string `json:"prefix"`
}

type fieldRef struct{ node, input string }

// imageSource resolves the uploaded images a workflow names.
type imageSource interface {
	// image returns the input key and size of an uploaded image.
	image(ctx context.Context, name string) (inputImage, error)
	// mask derives a mask (white repaints) from a channel of an uploaded
	// image (alpha: where it is transparent), grown by grow pixels as
	// VAEEncodeForInpaint's grow_mask_by does, stores it and returns its key.
	mask(ctx context.Context, name, channel string, grow int) (string, error)
}

// inputImage is an uploaded image.
type inputImage struct {
	key           string
	width, height int
}

// translate turns a workflow in API format into a plan, or refuses it with
// the errors ComfyUI would give, node by node.
func translate(ctx context.Context, raw json.RawMessage, src imageSource) (*plan, *PromptError) {
	w, pe := parseWorkflow(raw)
	if pe != nil {
		return nil, pe
	}
	outs := w.outputs()
	if len(outs) == 0 {
		return nil, promptError(errNoOutputs, "Prompt has no outputs", "")
	}
	ck := newChecker(w)
	for _, o := range outs {
		ck.check(o)
	}
	if len(ck.errs) > 0 {
		return nil, ck.refusal(outs)
	}
	t := &translator{w: w, ck: ck, src: src,
		p: &plan{classes: map[string]string{}, fields: map[string]fieldRef{}, w: w, outs: outs}}
	t.build(ctx, outs)
	if len(ck.errs) > 0 {
		return nil, ck.refusal(outs)
	}
	spec := t.p.spec
	// One image a task: a batch spreads over as many nodes as it has images.
	spec.Name, spec.FramesPerTask = jobName, 1
	spec.Normalize()
	if err := spec.Validate(); err != nil {
		fe, _ := wire.AsFieldErrors(err)
		return nil, t.p.refuse(fe)
	}
	t.p.spec = spec
	for id, n := range w.nodes {
		t.p.classes[id] = n.class.name
	}
	return t.p, nil
}

// refusal is the error of a workflow whose nodes have problems: every
// node with errors, and which outputs depend on it.
func (ck *checker) refusal(outs []string) *PromptError {
	pe := promptError(errOutputsInvalid, "Prompt outputs failed validation", "")
	var lines []string
	for _, id := range sortedIDs(ck.errs) {
		ne := NodeError{Errors: ck.errs[id], DependentOutputs: []string{}, ClassType: ck.w.nodes[id].class.name}
		for _, o := range outs {
			if ck.w.reaches(o, id) {
				ne.DependentOutputs = append(ne.DependentOutputs, o)
			}
		}
		pe.NodeErrors[id] = ne
		for _, e := range ne.Errors {
			lines = append(lines, e.Message+": "+e.Details)
		}
	}
	pe.Err.Details = strings.Join(lines, "\n")
	return pe
}

// reaches reports whether node to is from, or one from depends on.
func (w *workflow) reaches(from, to string) bool {
	seen := map[string]bool{}
	var walk func(id string) bool
	walk = func(id string) bool {
		if id == to {
			return true
		}
		if seen[id] || w.nodes[id] == nil {
			return false
		}
		seen[id] = true
		for _, raw := range w.nodes[id].inputs {
			if l, ok := parseLink(raw); ok && walk(l.node) {
				return true
			}
		}
		return false
	}
	return walk(from)
}

// order lists the nodes the outputs depend on, each after its inputs, as
// ComfyUI runs them.
func (w *workflow) order(outs []string) []string {
	var out []string
	seen := map[string]bool{}
	var visit func(id string)
	visit = func(id string) {
		n := w.nodes[id]
		if seen[id] || n == nil {
			return
		}
		seen[id] = true
		for _, in := range n.class.inputs {
			if l, ok := n.links[in.name]; ok {
				visit(l.node)
			}
		}
		out = append(out, id)
	}
	for _, o := range outs {
		visit(o)
	}
	return out
}

// refuse is the refusal of a workflow whose job the farm's own validation
// refused: each problem goes to the node input the field came from.
func (p *plan) refuse(fe wire.FieldErrors) *PromptError {
	ck := newChecker(p.w)
	for _, e := range fe {
		key, _, _ := strings.Cut(e.Field, "[")
		key, _, _ = strings.Cut(key, ".")
		ref, ok := p.fields[key]
		if !ok {
			ref = fieldRef{node: p.sampler, input: e.Field}
		}
		ck.add(ref.node, customError(ref.input, "%s", e.Reason))
	}
	return ck.refusal(p.outs)
}

// translator walks a checked workflow back from its outputs and fills a plan.
type translator struct {
	w   *workflow
	ck  *checker
	src imageSource
	p   *plan
}

// from returns the node that input name of n links to when its class is
// one of want; otherwise it records why the farm cannot run that and
// returns nil.
func (t *translator) from(n *node, name string, want ...string) *node {
	src := t.w.nodes[n.links[name].node]
	if !slices.Contains(want, src.class.name) {
		t.ck.add(n.id, customError(name, "comes from %s (node %s); the farm takes it only from %s",
			src.class.name, src.id, strings.Join(want, " or ")))
		return nil
	}
	return src
}

// field notes which node input a spec field comes from.
func (t *translator) field(field string, n *node, input string) {
	t.p.fields[field] = fieldRef{node: n.id, input: input}
}

// build fills the plan: every output shows the images of the one sampler.
func (t *translator) build(ctx context.Context, outs []string) {
	var sampler *node
	var decoders []*node
	for _, o := range outs {
		out := t.w.nodes[o]
		dec := t.from(out, "images", classVAEDecode)
		if dec == nil {
			continue
		}
		if !slices.Contains(decoders, dec) {
			decoders = append(decoders, dec)
		}
		s := t.from(dec, "samples", classKSampler, classKSamplerAdv)
		switch {
		case s == nil:
		case sampler == nil:
			sampler = s
		case s != sampler:
			t.ck.add(dec.id, customError("samples", "comes from sampler %s but another output shows sampler %s; "+
				"the farm runs one sampler per workflow (submit one workflow each)", s.id, sampler.id))
		}
		t.p.outputs = append(t.p.outputs, outputOf(out))
	}
	if sampler == nil {
		return
	}
	t.p.sampler = sampler.id
	loader := t.from(sampler, "model", classCheckpoint)
	if loader == nil {
		return
	}
	t.model(loader)
	for _, dec := range decoders {
		t.sameLoader(dec, "vae", loader)
	}
	t.prompts(sampler, loader)
	t.sampling(ctx, sampler, loader)
	order := t.w.order(outs)
	for _, id := range order {
		switch {
		case id == sampler.id:
		case t.w.reaches(sampler.id, id):
			t.p.pre = append(t.p.pre, id)
		default:
			t.p.post = append(t.p.post, id)
		}
	}
}

// outputOf describes an output node; SaveImage's prefix names its files.
func outputOf(n *node) outputNode {
	if n.class.name == classPreviewImage {
		return outputNode{Node: n.id, Type: "temp", Prefix: previewPrefix}
	}
	return outputNode{Node: n.id, Type: "output", Prefix: cleanPrefix(n.str("filename_prefix"))}
}

// cleanPrefix keeps a file name prefix to its last path element and to
// characters that are safe in any file system and URL.
func cleanPrefix(p string) string {
	p = path.Base(strings.ReplaceAll(p, "\\", "/"))
	p = strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '.':
			return r
		}
		return '_'
	}, p)
	if strings.Trim(p, "._") == "" {
		return defaultSavePrefix
	}
	return p
}

// model sets the spec's model from the checkpoint loader.
func (t *translator) model(loader *node) {
	name := path.Base(strings.ReplaceAll(loader.str("ckpt_name"), "\\", "/"))
	t.field("model", loader, "ckpt_name")
	t.field("model_family", loader, "ckpt_name")
	t.field("precision", loader, "ckpt_name")
	switch ext := strings.ToLower(path.Ext(name)); ext {
	case ".ckpt", ".pt", ".pth", ".bin":
		t.ck.add(loader.id, customError("ckpt_name", "%s is a pickle file, which the farm refuses (loading one runs arbitrary code); "+
			"convert it to .safetensors", name))
		return
	case ".safetensors":
		name = strings.TrimSuffix(name, path.Ext(name))
	}
	t.p.spec.Model = name
}

// sameLoader checks that input name of n comes from loader itself.
func (t *translator) sameLoader(n *node, name string, loader *node) {
	if src := t.from(n, name, classCheckpoint); src != nil && src != loader {
		t.ck.add(n.id, customError(name, "comes from checkpoint node %s but the sampler's model from node %s; "+
			"the farm uses one checkpoint for the model, its CLIP and its VAE", src.id, loader.id))
	}
}

// prompts sets the prompts and the clip skip from the sampler's conditioning.
func (t *translator) prompts(sampler, loader *node) {
	pos := t.from(sampler, "positive", classTextEncode)
	neg := t.from(sampler, "negative", classTextEncode)
	if pos == nil || neg == nil {
		return
	}
	t.p.spec.Prompts = []string{pos.str("text")}
	t.p.spec.NegativePrompt = neg.str("text")
	t.field("prompts", pos, "text")
	t.field("negative_prompt", neg, "text")
	skipPos, okPos := t.clipSkip(pos, loader)
	skipNeg, okNeg := t.clipSkip(neg, loader)
	if okPos && okNeg && skipPos != skipNeg {
		t.ck.add(neg.id, customError("clip", "stops CLIP at another layer than the positive prompt (node %s); "+
			"the farm encodes both prompts with one clip skip", pos.id))
	}
	t.p.spec.ClipSkip = skipPos
}

// clipSkip follows an encoder's clip input through CLIPSetLastLayer nodes
// to the checkpoint: the one nearest the encoder sets the layer, as in
// ComfyUI. stop_at_clip_layer -1 is the last layer (clip skip 0 in
// diffusers' count, which the farm uses), -2 the one before it, and so on.
func (t *translator) clipSkip(enc, loader *node) (int, bool) {
	skip, set := 0, false
	n := enc
	for {
		src := t.from(n, "clip", classCheckpoint, classClipSkip)
		switch {
		case src == nil:
			return 0, false
		case src.class.name == classCheckpoint:
			if src != loader {
				t.sameLoader(n, "clip", loader)
				return 0, false
			}
			return skip, true
		}
		if !set {
			skip, set = int(-src.int("stop_at_clip_layer"))-1, true
			t.field("clip_skip", src, "stop_at_clip_layer")
		}
		n = src
	}
}
