package checkpoint

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/latentfarm/latentfarm/diffusion/backend"
	"github.com/latentfarm/latentfarm/diffusion/clip"
	"github.com/latentfarm/latentfarm/diffusion/safetensors"
	"github.com/latentfarm/latentfarm/diffusion/scheduler"
	"github.com/latentfarm/latentfarm/diffusion/unet"
	"github.com/latentfarm/latentfarm/diffusion/vae"
)

// Errors of single-file checkpoints, matched with errors.Is.
var (
	// ErrNoTokenizer: a single-file checkpoint carries no tokenizer and
	// none was given.
	ErrNoTokenizer = errors.New("no tokenizer for a single-file checkpoint")
	// ErrUnknownLayout: the file is not an SD1.x/SD2.x checkpoint with LDM
	// key names, or its shapes match no known model and no config was given.
	ErrUnknownLayout = errors.New("unknown checkpoint layout")
	// ErrConfigMismatch: the config describes a model other than the one in
	// the file.
	ErrConfigMismatch = errors.New("config does not match the checkpoint")
)

// textLayout is how a checkpoint stores its text encoder.
type textLayout int

const (
	layoutNone     textLayout = iota
	layoutCLIP                // cond_stage_model.transformer.text_model.* (transformers names)
	layoutCLIPOld             // cond_stage_model.transformer.* (older transformers, no text_model level)
	layoutOpenCLIP            // cond_stage_model.model.* (OpenCLIP, SD2)
)

func (l textLayout) String() string {
	switch l {
	case layoutCLIP, layoutCLIPOld:
		return "CLIP (cond_stage_model.transformer.*, FrozenCLIPEmbedder)"
	case layoutOpenCLIP:
		return "OpenCLIP (cond_stage_model.model.*, FrozenOpenCLIPEmbedder)"
	}
	return "none"
}

// singleSpec is what a single-file checkpoint does not say about itself:
// the configs of its parts, from --config or recognised from the weights.
type singleSpec struct {
	source string // where the configs came from, for messages
	unet   unet.Config
	vae    vae.Config
	text   clip.Config
	sched  scheduler.Config
	tokDir string // tokenizer folder that came with the config, if any
	// textFromWeights: text holds only the activation and token ids; the
	// sizes are read from the weights (an LDM yaml only names the class).
	textFromWeights bool
	// wantLayout is the text encoder class the config names (layoutNone:
	// any).
	wantLayout textLayout
	// penultimate: an OpenCLIP tower conditions on the output of all but
	// its last resblock (SD2's layer="penultimate"); that block is dropped.
	penultimate bool
}

// keyShapes is a checkpoint's table of contents: stored name -> shape.
type keyShapes map[string][]int

func keyShapesOf(f *safetensors.File) keyShapes {
	ks := keyShapes{}
	for _, name := range f.Names() {
		info, _ := f.Info(name)
		ks[name] = info.Shape
	}
	return ks
}

// loadSingleFile reads a single-file .safetensors checkpoint with the
// original LDM key names (model.diffusion_model.*, first_stage_model.*,
// cond_stage_model.*), mapping each weight to its diffusers name at load.
// The configs come from opts.Config (an LDM yaml or a diffusers folder) or,
// for standard SD1.x/SD2.x checkpoints, from the weights themselves.
func loadSingleFile(b backend.Backend, path string, opts Options) (*Model, error) {
	f, err := safetensors.Open(path)
	if err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	defer f.Close()
	ks := keyShapesOf(f)
	if err := checkLayout(path, ks); err != nil {
		return nil, err
	}
	layout := textLayoutOf(ks)
	spec, err := resolveSpec(path, ks, opts)
	if err != nil {
		return nil, err
	}
	if err := spec.finishText(ks, layout); err != nil {
		return nil, fmt.Errorf("checkpoint: %s: %w", path, err)
	}
	tokDir := opts.Tokenizer
	if tokDir == "" {
		tokDir = spec.tokDir
	}
	if tokDir == "" {
		return nil, fmt.Errorf("checkpoint: %s: %w: pass --tokenizer DIR (a folder with vocab.json and merges.txt, or CLIP's bpe_simple_vocab_16e6.txt.gz) "+
			"or --config with a diffusers model folder that has a tokenizer/ folder", path, ErrNoTokenizer)
	}
	m := &Model{
		Name:       strings.TrimSuffix(filepath.Base(path), filepath.Ext(path)),
		Family:     familyOf(spec.unet),
		TextConfig: spec.text,
		UNetConfig: spec.unet,
		VAEConfig:  spec.vae,
		Scheduler:  spec.sched,
	}
	if layout == layoutOpenCLIP {
		m.Family = SD2
	}
	if m.Tokenizer, err = loadTokenizer(tokDir); err != nil {
		return nil, err
	}
	if err := m.buildSingle(fileSource{b: b, f: f}, path, ks, spec, layout, opts.VAE != ""); err != nil {
		return nil, err
	}
	if m.Hash, err = fileHash(path); err != nil {
		return nil, err
	}
	return m, nil
}

// buildSingle builds the three networks from the file, then checks that
// the config used every UNet and autoencoder tensor: a leftover means the
// config describes a smaller model than the file holds.
func (m *Model) buildSingle(src tensorSource, path string, ks keyShapes, spec *singleSpec, layout textLayout, otherVAE bool) error {
	var err error
	uw := newMappedWeights(src, newUNetNames(spec.unet).ldm)
	if m.UNet, err = unet.New(spec.unet, uw); err != nil {
		return fmt.Errorf("checkpoint: %s: %w", path, err)
	}
	vw := newMappedWeights(src, withPrefix(ldmVAEPrefix, func(name string) (ldmRef, bool) {
		return vaeLDMName(len(spec.vae.BlockOutChannels), name)
	}))
	switch {
	case hasPrefix(ks, ldmVAEPrefix):
		if m.VAE, err = vae.New(spec.vae, vw); err != nil {
			return fmt.Errorf("checkpoint: %s: %w", path, err)
		}
	case !otherVAE:
		return fmt.Errorf("checkpoint: %s: the file holds no autoencoder (no %s* tensors): pass --vae", path, ldmVAEPrefix)
	}
	var names mapFunc
	switch layout {
	case layoutOpenCLIP:
		names = openCLIPName
	default:
		names = clipLDMName(layout == layoutCLIP)
	}
	if m.TextEncoder, err = clip.New(spec.text, newMappedWeights(src, names)); err != nil {
		return fmt.Errorf("checkpoint: %s: %w", path, err)
	}
	for _, part := range []struct {
		prefix, what string
		w            *mappedWeights
	}{{ldmUNetPrefix, "unet", uw}, {ldmVAEPrefix, "autoencoder", vw}} {
		if err := checkAllUsed(ks, part.prefix, part.w); err != nil {
			return fmt.Errorf("checkpoint: %s: %s from %s: %w", path, part.what, spec.source, err)
		}
	}
	return nil
}

// checkAllUsed fails when tensors under prefix were not asked for.
func checkAllUsed(ks keyShapes, prefix string, w *mappedWeights) error {
	var unused []string
	for key := range ks {
		if strings.HasPrefix(key, prefix) && !w.used[key] && !strings.HasPrefix(key, ldmVAEPrefix+"loss.") {
			unused = append(unused, key)
		}
	}
	if len(unused) == 0 {
		return nil
	}
	slices.Sort(unused)
	return fmt.Errorf("%d checkpoint tensors are not part of the model the config describes (first: %q %v): %w",
		len(unused), unused[0], ks[unused[0]], ErrConfigMismatch)
}

func hasPrefix(ks keyShapes, prefix string) bool {
	for key := range ks {
		if strings.HasPrefix(key, prefix) {
			return true
		}
	}
	return false
}

// resolveSpec picks the configs: a diffusers folder or an LDM yaml given
// as opts.Config, else recognition from the weights.
func resolveSpec(path string, ks keyShapes, opts Options) (*singleSpec, error) {
	if opts.Config == "" {
		spec, err := detectSpec(ks)
		if err != nil {
			return nil, fmt.Errorf("checkpoint: %s: %w", path, err)
		}
		return spec, nil
	}
	st, err := os.Stat(opts.Config)
	if err != nil {
		return nil, fmt.Errorf("checkpoint: config: %w", err)
	}
	if st.IsDir() {
		return folderSpec(opts.Config)
	}
	return yamlSpec(opts.Config)
}

// folderSpec reads the configs of a diffusers model folder (unet/, vae/,
// text_encoder/ config.json; scheduler/ and tokenizer/ when present), as
// the reference's from_single_file(config=...) does.
func folderSpec(dir string) (*singleSpec, error) {
	spec := &singleSpec{source: "config folder " + dir, penultimate: true}
	raw, err := readConfig(filepath.Join(dir, "unet"))
	if err != nil {
		return nil, err
	}
	if spec.unet, err = unet.ParseConfig(raw); err != nil {
		return nil, fmt.Errorf("checkpoint: %s: %w", filepath.Join(dir, "unet", "config.json"), err)
	}
	if spec.vae, err = readVAEConfig(filepath.Join(dir, "vae")); err != nil {
		return nil, err
	}
	if raw, err = readConfig(filepath.Join(dir, "text_encoder")); err != nil {
		return nil, err
	}
	if spec.text, err = clip.ParseConfig(raw); err != nil {
		return nil, fmt.Errorf("checkpoint: %s: %w", filepath.Join(dir, "text_encoder", "config.json"), err)
	}
	if spec.sched, err = readSchedulerConfig(filepath.Join(dir, "scheduler")); err != nil {
		return nil, err
	}
	tok := filepath.Join(dir, "tokenizer")
	if _, err := os.Stat(filepath.Join(tok, "vocab.json")); err == nil {
		spec.tokDir = tok
	}
	return spec, nil
}

// textLayoutOf finds the text encoder's key layout.
func textLayoutOf(ks keyShapes) textLayout {
	switch {
	case ks[ldmOpenCLIPPrefix+"token_embedding.weight"] != nil:
		return layoutOpenCLIP
	case ks[ldmCLIPPrefix+"text_model.embeddings.token_embedding.weight"] != nil:
		return layoutCLIP
	case ks[ldmCLIPPrefix+"embeddings.token_embedding.weight"] != nil:
		return layoutCLIPOld
	}
	return layoutNone
}

// finishText reconciles the text encoder config with the weights: the
// sizes when the config only named the class, and SD2's penultimate rule
// for OpenCLIP towers (the last resblock is not loaded).
func (s *singleSpec) finishText(ks keyShapes, layout textLayout) error {
	open := layout == layoutOpenCLIP
	if s.wantLayout != layoutNone && (s.wantLayout == layoutOpenCLIP) != open {
		return fmt.Errorf("%s names a %s text encoder, the file holds a %s one: %w", s.source, s.wantLayout, layout, ErrConfigMismatch)
	}
	if s.textFromWeights {
		if err := s.textSizes(ks, layout); err != nil {
			return err
		}
	}
	if open {
		n := countIndexed(maps.Keys(ks), ldmOpenCLIPPrefix+"transformer.resblocks.")
		if s.penultimate {
			n--
		}
		if n < 1 {
			return fmt.Errorf("the OpenCLIP text encoder has too few resblocks (%d used): %w", n, ErrUnknownLayout)
		}
		s.text.NumHiddenLayers = n
	}
	return nil
}

// textSizes reads the text encoder's sizes from its weights. The head
// count is not stored: CLIP ViT-L/14 and OpenCLIP ViT-H/14 both use
// 64-wide heads.
func (s *singleSpec) textSizes(ks keyShapes, layout textLayout) error {
	var tokKey, posKey, layers, fc1 string
	switch layout {
	case layoutOpenCLIP:
		tokKey, posKey = ldmOpenCLIPPrefix+"token_embedding.weight", ldmOpenCLIPPrefix+"positional_embedding"
		layers, fc1 = ldmOpenCLIPPrefix+"transformer.resblocks.", "mlp.c_fc.weight"
	case layoutCLIP, layoutCLIPOld:
		p := ldmCLIPPrefix
		if layout == layoutCLIP {
			p += "text_model."
		}
		tokKey, posKey = p+"embeddings.token_embedding.weight", p+"embeddings.position_embedding.weight"
		layers, fc1 = p+"encoder.layers.", "mlp.fc1.weight"
	default:
		return fmt.Errorf("no text encoder found: %w", ErrUnknownLayout)
	}
	tok, pos, ff := ks[tokKey], ks[posKey], ks[layers+"0."+fc1]
	for key, shape := range map[string][]int{tokKey: tok, posKey: pos, layers + "0." + fc1: ff} {
		if len(shape) != 2 {
			return fmt.Errorf("text encoder tensor %q has shape %v, want a matrix: %w", key, shape, ErrUnknownLayout)
		}
	}
	const headWidth = 64
	d := tok[1]
	if d%headWidth != 0 {
		return fmt.Errorf("cannot tell the attention heads of a %d-wide text encoder from the weights "+
			"(CLIP and OpenCLIP use %d-wide heads); pass a diffusers folder as --config: %w", d, headWidth, ErrUnknownLayout)
	}
	s.text.VocabSize, s.text.HiddenSize = tok[0], d
	s.text.MaxPositionEmbeddings = pos[0]
	s.text.IntermediateSize = ff[0]
	s.text.NumHiddenLayers = countIndexed(maps.Keys(ks), layers)
	s.text.NumAttentionHeads = d / headWidth
	return nil
}
