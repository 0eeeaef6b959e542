package comfy

import (
	"slices"

	"github.com/latentfarm/latentfarm/diffusion/scheduler"
	"github.com/latentfarm/latentfarm/shared/wire"
)

// Value types of ComfyUI's graph: the link types nodes pass each other and
// the widget types a workflow gives literally.
const (
	typeModel  = "MODEL"
	typeCLIP   = "CLIP"
	typeVAE    = "VAE"
	typeCond   = "CONDITIONING"
	typeLatent = "LATENT"
	typeImage  = "IMAGE"
	typeMask   = "MASK"
	typeInt    = "INT"
	typeFloat  = "FLOAT"
	typeString = "STRING"
	typeCombo  = "COMBO"
)

// Node classes the farm runs.
const (
	classCheckpoint     = "CheckpointLoaderSimple"
	classTextEncode     = "CLIPTextEncode"
	classClipSkip       = "CLIPSetLastLayer"
	classEmptyLatent    = "EmptyLatentImage"
	classKSampler       = "KSampler"
	classKSamplerAdv    = "KSamplerAdvanced"
	classVAEDecode      = "VAEDecode"
	classVAEEncode      = "VAEEncode"
	classEncodeInpaint  = "VAEEncodeForInpaint"
	classLatentMask     = "SetLatentNoiseMask"
	classLoadImage      = "LoadImage"
	classLoadImageMask  = "LoadImageMask"
	classSaveImage      = "SaveImage"
	classPreviewImage   = "PreviewImage"
	defaultSavePrefix   = "ComfyUI"
	previewPrefix       = "ComfyUI_temp"
	maskChannelAlpha    = "alpha"
	defaultGrowMaskBy   = 6
	comfyMaxBatch       = 4096
	comfyMaxScheduleEnd = 10000
)

// Combo options filled per request from the farm rather than fixed.
const (
	optionsModels = "models"
	optionsImages = "images" // uploaded inputs; checked by the translation
)

// samplerNames maps ComfyUI's sampler names onto the engine's
// (diffusion/scheduler owns the list); ComfyUI's order.
var samplerNames = []struct{ comfy, farm string }{
	{"euler", scheduler.NameEuler},
	{"euler_ancestral", scheduler.NameEulerA},
	{"dpmpp_2m", scheduler.NameDPMPP2M},
	{"ddim", scheduler.NameDDIM},
}

// scheduleNames maps ComfyUI's scheduler names onto the engine's schedules.
var scheduleNames = []struct{ comfy, farm string }{
	{"normal", scheduler.ScheduleDefault},
	{"karras", scheduler.ScheduleKarras},
}

// comfySamplers lists the ComfyUI sampler names the engine has.
func comfySamplers() []string {
	var out []string
	for _, s := range samplerNames {
		if slices.Contains(scheduler.Names(), s.farm) {
			out = append(out, s.comfy)
		}
	}
	return out
}

// comfySchedulers lists the ComfyUI scheduler names the engine has.
func comfySchedulers() []string {
	var out []string
	for _, s := range scheduleNames {
		if slices.Contains(scheduler.Schedules(), s.farm) {
			out = append(out, s.comfy)
		}
	}
	return out
}

// farmSampler and farmSchedule translate a ComfyUI name already checked
// against comfySamplers or comfySchedulers.
func farmSampler(comfy string) string {
	for _, s := range samplerNames {
		if s.comfy == comfy {
			return s.farm
		}
	}
	return ""
}

func farmSchedule(comfy string) string {
	for _, s := range scheduleNames {
		if s.comfy == comfy {
			return s.farm
		}
	}
	return ""
}

// input is one input of a node class, as ComfyUI's INPUT_TYPES declares it.
type input struct {
	name string
	typ  string
	// Widgets: the default, and bounds of numbers.
	def      any
	min, max float64
	step     float64
	// Combos: the fixed options, or optionsModels/optionsImages.
	options []string
	dynamic string
	// multiline marks a prompt box; upload an image picker.
	multiline, upload bool
}

func link(name, typ string) input { return input{name: name, typ: typ} }

func intIn(name string, def, lo, hi int64) input {
	return input{name: name, typ: typeInt, def: def, min: float64(lo), max: float64(hi), step: 1}
}

func floatIn(name string, def, lo, hi, step float64) input {
	return input{name: name, typ: typeFloat, def: def, min: lo, max: hi, step: step}
}

func combo(name string, options ...string) input {
	return input{name: name, typ: typeCombo, options: options, def: options[0]}
}

// class is a node class the farm supports.
type class struct {
	name, display, category, description string
	inputs                               []input
	outputs                              []string
	outputNames                          []string
	outputNode                           bool
}

// input returns the class's input called name.
func (c *class) input(name string) (input, bool) {
	for _, in := range c.inputs {
		if in.name == name {
			return in, true
		}
	}
	return input{}, false
}

// samplerInputs are what KSampler and KSamplerAdvanced share, in ComfyUI's order.
func samplerInputs(seed string) []input {
	return []input{
		link("model", typeModel),
		intIn(seed, 0, 0, wire.MaxSeed),
		intIn("steps", scheduler.DefaultSteps, 1, wire.MaxSteps),
		{name: "cfg", typ: typeFloat, def: scheduler.DefaultCFGScale, min: 0, max: wire.MaxCFGScale, step: 0.1},
		{name: "sampler_name", typ: typeCombo, options: comfySamplers(), def: comfySamplers()[0]},
		{name: "scheduler", typ: typeCombo, options: comfySchedulers(), def: comfySchedulers()[0]},
		link("positive", typeCond),
		link("negative", typeCond),
		link("latent_image", typeLatent),
	}
}

// classes are the node classes of the standard text-to-image, img2img and
// inpainting graphs. Limits are the farm's where they are tighter than
// ComfyUI's (steps, cfg, sizes, seeds, clip skip).
var classes = []*class{
	{name: classCheckpoint, display: "Load Checkpoint", category: "loaders",
		description: "Loads a model the farm's nodes have or its model store holds.",
		inputs:      []input{{name: "ckpt_name", typ: typeCombo, dynamic: optionsModels}},
		outputs:     []string{typeModel, typeCLIP, typeVAE}},
	{name: classTextEncode, display: "CLIP Text Encode (Prompt)", category: "conditioning",
		inputs:  []input{{name: "text", typ: typeString, def: "", multiline: true}, link("clip", typeCLIP)},
		outputs: []string{typeCond}},
	{name: classClipSkip, display: "CLIP Set Last Layer", category: "conditioning",
		inputs:  []input{link("clip", typeCLIP), intIn("stop_at_clip_layer", -1, -(wire.MaxClipSkip + 1), -1)},
		outputs: []string{typeCLIP}},
	{name: classEmptyLatent, display: "Empty Latent Image", category: "latent",
		inputs: []input{
			{name: "width", typ: typeInt, def: int64(wire.DefaultWidth), min: wire.MinSize, max: wire.MaxSize, step: 8},
			{name: "height", typ: typeInt, def: int64(wire.DefaultHeight), min: wire.MinSize, max: wire.MaxSize, step: 8},
			intIn("batch_size", 1, 1, comfyMaxBatch),
		},
		outputs: []string{typeLatent}},
	{name: classKSampler, display: "KSampler", category: "sampling",
		inputs:  append(samplerInputs("seed"), floatIn("denoise", 1, 0, 1, 0.01)),
		outputs: []string{typeLatent}},
	{name: classKSamplerAdv, display: "KSampler (Advanced)", category: "sampling",
		inputs: append(append([]input{link("model", typeModel), combo("add_noise", "enable", "disable")},
			samplerInputs("noise_seed")[1:]...),
			intIn("start_at_step", 0, 0, comfyMaxScheduleEnd), intIn("end_at_step", comfyMaxScheduleEnd, 0, comfyMaxScheduleEnd),
			combo("return_with_leftover_noise", "disable", "enable")),
		outputs: []string{typeLatent}},
	{name: classVAEDecode, display: "VAE Decode", category: "latent",
		inputs: []input{link("samples", typeLatent), link("vae", typeVAE)}, outputs: []string{typeImage}},
	{name: classVAEEncode, display: "VAE Encode", category: "latent",
		inputs: []input{link("pixels", typeImage), link("vae", typeVAE)}, outputs: []string{typeLatent}},
	{name: classEncodeInpaint, display: "VAE Encode (for Inpainting)", category: "latent/inpaint",
		inputs: []input{link("pixels", typeImage), link("vae", typeVAE), link("mask", typeMask),
			intIn("grow_mask_by", defaultGrowMaskBy, 0, 64)},
		outputs: []string{typeLatent}},
	{name: classLatentMask, display: "Set Latent Noise Mask", category: "latent/inpaint",
		inputs: []input{link("samples", typeLatent), link("mask", typeMask)}, outputs: []string{typeLatent}},
	{name: classLoadImage, display: "Load Image", category: "image",
		description: "An image uploaded with POST /upload/image; its MASK is where it is transparent.",
		inputs:      []input{{name: "image", typ: typeCombo, dynamic: optionsImages, upload: true}},
		outputs:     []string{typeImage, typeMask}},
	{name: classLoadImageMask, display: "Load Image (as Mask)", category: "mask",
		inputs: []input{{name: "image", typ: typeCombo, dynamic: optionsImages, upload: true},
			combo("channel", maskChannelAlpha, "red", "green", "blue")},
		outputs: []string{typeMask}},
	{name: classSaveImage, display: "Save Image", category: "image", outputNode: true,
		description: "Saves the images to the farm's storage; /view serves them.",
		inputs:      []input{link("images", typeImage), {name: "filename_prefix", typ: typeString, def: defaultSavePrefix}}},
	{name: classPreviewImage, display: "Preview Image", category: "image", outputNode: true,
		inputs: []input{link("images", typeImage)}},
}

// classByName finds a supported class.
func classByName(name string) (*class, bool) {
	for _, c := range classes {
		if c.name == name {
			return c, true
		}
	}
	return nil, false
}

// classNames lists the supported classes, for messages.
func classNames() []string {
	out := make([]string, len(classes))
	for i, c := range classes {
		out[i] = c.name
	}
	return out
}

// isLinkType reports whether typ is passed between nodes rather than given.
func isLinkType(typ string) bool {
	switch typ {
	case typeInt, typeFloat, typeString, typeCombo:
		return false
	}
	return true
}

// objectInfo is the /object_info entry of c; dynamic combos take their
// options from opts.
func (c *class) objectInfo(opts map[string][]string) map[string]any {
	required := map[string]any{}
	order := make([]string, 0, len(c.inputs))
	for _, in := range c.inputs {
		order = append(order, in.name)
		required[in.name] = in.spec(opts)
	}
	info := map[string]any{
		"input":          map[string]any{"required": required},
		"input_order":    map[string]any{"required": order},
		"output":         nonNil(c.outputs),
		"output_is_list": make([]bool, len(c.outputs)),
		"output_name":    nonNil(c.outputs),
		"name":           c.name,
		"display_name":   c.display,
		"description":    c.description,
		"python_module":  "nodes",
		"category":       c.category,
		"output_node":    c.outputNode,
	}
	if c.outputNode {
		hidden := map[string]string{"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO"}
		info["input"].(map[string]any)["hidden"] = hidden
		info["input_order"].(map[string]any)["hidden"] = []string{"prompt", "extra_pnginfo"}
	}
	return info
}

// spec is the input's INPUT_TYPES entry: [type, config] or [options, config].
func (in input) spec(opts map[string][]string) []any {
	switch in.typ {
	case typeInt, typeFloat:
		cfg := map[string]any{"default": in.def, "min": in.min, "max": in.max, "step": in.step}
		if in.typ == typeInt {
			cfg["min"], cfg["max"], cfg["step"] = int64(in.min), int64(in.max), int64(in.step)
		}
		return []any{in.typ, cfg}
	case typeString:
		return []any{in.typ, map[string]any{"default": in.def, "multiline": in.multiline, "dynamicPrompts": in.multiline}}
	case typeCombo:
		options := in.options
		if in.dynamic != "" {
			options = nonNil(opts[in.dynamic])
		}
		cfg := map[string]any{}
		if in.upload {
			cfg["image_upload"] = true
		}
		return []any{options, cfg}
	}
	return []any{in.typ}
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
