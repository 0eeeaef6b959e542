package comfy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"strings"
	"testing"

	"github.com/latentfarm/latentfarm/shared/wire"
)

// Input keys the fake image source knows.
var (
	testImageKey = wire.InputKey(strings.Repeat("a", 64), "png")
	testMaskKey  = wire.InputKey(strings.Repeat("b", 64), "png")
)

// testImages resolves the one uploaded image "photo.png" (64x48).
type testImages struct{ masks []string }

func (ti *testImages) image(_ context.Context, name string) (inputImage, error) {
	if name != "photo.png" {
		return inputImage{}, errors.New("no such image")
	}
	return inputImage{key: testImageKey, width: 64, height: 48}, nil
}

func (ti *testImages) mask(_ context.Context, name, channel string, grow int) (string, error) {
	if name != "photo.png" {
		return "", errors.New("no such image")
	}
	ti.masks = append(ti.masks, fmt.Sprintf("%s/%s/%d", name, channel, grow))
	return testMaskKey, nil
}

func n(class string, inputs map[string]any) map[string]any {
	return map[string]any{"class_type": class, "inputs": inputs, "_meta": map[string]any{"title": class}}
}

// defaultWorkflow is ComfyUI's default text-to-image graph.
func defaultWorkflow() map[string]any {
	return map[string]any{
		"3": n("KSampler", map[string]any{"seed": 42, "steps": 20, "cfg": 7.0, "sampler_name": "euler", "scheduler": "normal",
			"denoise": 1, "model": []any{"4", 0}, "positive": []any{"6", 0}, "negative": []any{"7", 0}, "latent_image": []any{"5", 0}}),
		"4": n("CheckpointLoaderSimple", map[string]any{"ckpt_name": "sd15.safetensors"}),
		"5": n("EmptyLatentImage", map[string]any{"width": 512, "height": 384, "batch_size": 1}),
		"6": n("CLIPTextEncode", map[string]any{"text": "a lighthouse at dusk", "clip": []any{"4", 1}}),
		"7": n("CLIPTextEncode", map[string]any{"text": "blurry", "clip": []any{"4", 1}}),
		"8": n("VAEDecode", map[string]any{"samples": []any{"3", 0}, "vae": []any{"4", 2}}),
		"9": n("SaveImage", map[string]any{"filename_prefix": "out/shot", "images": []any{"8", 0}}),
	}
}

func set(w map[string]any, id, input string, v any) {
	w[id].(map[string]any)["inputs"].(map[string]any)[input] = v
}

// img2img turns the default graph into LoadImage -> VAEEncode -> KSampler.
func img2img(w map[string]any) {
	delete(w, "5")
	w["10"] = n("LoadImage", map[string]any{"image": "photo.png"})
	w["11"] = n("VAEEncode", map[string]any{"pixels": []any{"10", 0}, "vae": []any{"4", 2}})
	set(w, "3", "latent_image", []any{"11", 0})
}

func run(t *testing.T, w map[string]any) (*plan, *PromptError, *testImages) {
	t.Helper()
	raw, err := json.Marshal(w)
	if err != nil {
		t.Fatal(err)
	}
	src := &testImages{}
	p, pe := translate(context.Background(), raw, src)
	return p, pe, src
}

func TestTranslate_DefaultWorkflow(t *testing.T) {
	p, pe, _ := run(t, defaultWorkflow())
	if pe != nil {
		t.Fatal(pe)
	}
	cfg := 7.0
	want := wire.JobSpec{Kind: wire.KindBatch, Name: jobName, Model: "sd15", Prompts: []string{"a lighthouse at dusk"},
		NegativePrompt: "blurry", Seeds: wire.SeedRange(42, 1), ImagesPerPrompt: 1, Width: 512, Height: 384,
		Steps: 20, CFGScale: &cfg, Sampler: wire.SamplerEuler, Schedule: wire.ScheduleDefault, FramesPerTask: 1}
	want.Normalize()
	if !reflect.DeepEqual(p.spec, want) {
		t.Errorf("spec\n got %+v\nwant %+v", p.spec, want)
	}
	if !reflect.DeepEqual(p.pre, []string{"4", "6", "7", "5"}) || p.sampler != "3" || !reflect.DeepEqual(p.post, []string{"8", "9"}) {
		t.Errorf("order: pre %v, sampler %s, post %v; want [4 6 7 5], 3, [8 9]", p.pre, p.sampler, p.post)
	}
	if want := []outputNode{{Node: "9", Type: "output", Prefix: "shot"}}; !reflect.DeepEqual(p.outputs, want) {
		t.Errorf("outputs %+v, want %+v", p.outputs, want)
	}
}

func TestTranslate_Spec(t *testing.T) {
	for _, tc := range []struct {
		name  string
		edit  func(w map[string]any)
		check func(s wire.JobSpec) string
		masks []string
	}{
		{"euler_ancestral karras", func(w map[string]any) {
			set(w, "3", "sampler_name", "euler_ancestral")
			set(w, "3", "scheduler", "karras")
		}, func(s wire.JobSpec) string { return s.Sampler + " " + s.Schedule + " -> euler_a karras" }, nil},
		{"dpmpp_2m", func(w map[string]any) { set(w, "3", "sampler_name", "dpmpp_2m") },
			func(s wire.JobSpec) string { return s.Sampler + " -> dpmpp_2m" }, nil},
		{"ddim normal", func(w map[string]any) { set(w, "3", "sampler_name", "ddim") },
			func(s wire.JobSpec) string { return s.Sampler + " " + s.Schedule + " -> ddim default" }, nil},
		{"batch of 3 takes seeds 42..44", func(w map[string]any) { set(w, "5", "batch_size", 3) },
			func(s wire.JobSpec) string {
				return fmt.Sprintf("%d %d %d -> 3 42 44", s.ImagesPerPrompt, s.Seeds.At(0), s.Seeds.At(2))
			}, nil},
		{"a list of seeds", func(w map[string]any) { set(w, "3", "seed", []any{5, 9}) },
			func(s wire.JobSpec) string { return fmt.Sprintf("%v %d -> [5 9] 2", s.Seeds.List, s.ImagesPerPrompt) }, nil},
		{"ckpt in a folder", func(w map[string]any) { set(w, "4", "ckpt_name", `SD15\dreamy-v2.safetensors`) },
			func(s wire.JobSpec) string { return s.Model + " " + s.ModelFamily + " -> dreamy-v2 sd2" }, nil},
		{"clip skip 2", func(w map[string]any) {
			w["12"] = n("CLIPSetLastLayer", map[string]any{"clip": []any{"4", 1}, "stop_at_clip_layer": -2})
			set(w, "6", "clip", []any{"12", 0})
			set(w, "7", "clip", []any{"12", 0})
		}, func(s wire.JobSpec) string { return fmt.Sprintf("%d -> 1", s.ClipSkip) }, nil},
		{"steps as a float truncate", func(w map[string]any) { set(w, "3", "steps", 20.7) },
			func(s wire.JobSpec) string { return fmt.Sprintf("%d -> 20", s.Steps) }, nil},
		{"numbers as strings", func(w map[string]any) { set(w, "3", "cfg", "6.5") },
			func(s wire.JobSpec) string { return fmt.Sprintf("%g -> 6.5", s.CFG()) }, nil},
		{"img2img at denoise 1", img2img, func(s wire.JobSpec) string {
			return fmt.Sprintf("%s %dx%d %d %g -> %s 64x48 20 1", s.InitImage, s.Width, s.Height, s.Steps, s.Strength, testImageKey)
		}, nil},
		{"img2img at denoise 0.5 runs 20 of 40 steps", func(w map[string]any) {
			img2img(w)
			set(w, "3", "denoise", 0.5)
		}, func(s wire.JobSpec) string { return fmt.Sprintf("%d %g -> 40 0.5125", s.Steps, s.Strength) }, nil},
		{"img2img at denoise 0.3 runs 20 of 66 steps", func(w map[string]any) {
			img2img(w)
			set(w, "3", "denoise", 0.3)
		}, func(s wire.JobSpec) string {
			return fmt.Sprintf("%d %d -> 66 20", s.Steps, int(float64(s.Steps)*s.Strength))
		}, nil},
		{"KSamplerAdvanced from step 6 of 20", func(w map[string]any) {
			img2img(w)
			w["3"] = n("KSamplerAdvanced", map[string]any{"add_noise": "enable", "noise_seed": 8, "steps": 20, "cfg": 7.0,
				"sampler_name": "euler", "scheduler": "karras", "start_at_step": 6, "end_at_step": 10000,
				"return_with_leftover_noise": "disable", "model": []any{"4", 0}, "positive": []any{"6", 0},
				"negative": []any{"7", 0}, "latent_image": []any{"11", 0}})
		}, func(s wire.JobSpec) string {
			return fmt.Sprintf("%d %d %d -> 8 20 14", s.Seeds.At(0), s.Steps, int(float64(s.Steps)*s.Strength))
		}, nil},
		{"inpainting with the alpha mask", func(w map[string]any) {
			img2img(w)
			w["11"] = n("VAEEncodeForInpaint", map[string]any{"pixels": []any{"10", 0}, "vae": []any{"4", 2},
				"mask": []any{"10", 1}, "grow_mask_by": 6})
		}, func(s wire.JobSpec) string { return fmt.Sprintf("%s %g -> %s 1", s.Mask, s.Strength, testMaskKey) },
			[]string{"photo.png/alpha/6"}},
		{"SetLatentNoiseMask with a mask image", func(w map[string]any) {
			img2img(w)
			w["12"] = n("LoadImageMask", map[string]any{"image": "photo.png", "channel": "red"})
			w["13"] = n("SetLatentNoiseMask", map[string]any{"samples": []any{"11", 0}, "mask": []any{"12", 0}})
			set(w, "3", "latent_image", []any{"13", 0})
			set(w, "3", "denoise", 0.8)
		}, func(s wire.JobSpec) string { return fmt.Sprintf("%s %d -> %s 25", s.Mask, s.Steps, testMaskKey) },
			[]string{"photo.png/red/0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := defaultWorkflow()
			tc.edit(w)
			p, pe, src := run(t, w)
			if pe != nil {
				t.Fatal(pe)
			}
			got, want, _ := strings.Cut(tc.check(p.spec), " -> ")
			if got != want {
				t.Errorf("got %s, want %s", got, want)
			}
			if !reflect.DeepEqual(src.masks, tc.masks) {
				t.Errorf("masks made: %v, want %v", src.masks, tc.masks)
			}
		})
	}
}

// refusals are workflows the farm refuses: the error type, then the node
// id, error type and a part of the details of one node error ("" node: no
// node errors).
var refusals = []struct {
	name                         string
	edit                         func(w map[string]any)
	typ, node, nodeType, details string
}{
	{"unknown class", func(w map[string]any) {
		w["10"] = n("LoraLoader", map[string]any{"model": []any{"4", 0}})
	}, errInvalidPrompt, "10", errInvalidPrompt, "Node ID '#10'"},
	{"no class_type", func(w map[string]any) { w["10"] = map[string]any{"inputs": map[string]any{}} },
		errInvalidPrompt, "", "", ""},
	{"no output", func(w map[string]any) { delete(w, "9") }, errNoOutputs, "", "", ""},
	{"missing input", func(w map[string]any) {
		delete(w["3"].(map[string]any)["inputs"].(map[string]any), "cfg")
	}, errOutputsInvalid, "3", errMissingInput, "cfg"},
	{"link to no node", func(w map[string]any) { set(w, "8", "vae", []any{"40", 2}) },
		errOutputsInvalid, "8", errBadLink, "node 40 does not exist"},
	{"link of the wrong type", func(w map[string]any) { set(w, "3", "positive", []any{"4", 0}) },
		errOutputsInvalid, "3", errTypeMismatch, "MODEL"},
	{"a literal for a link", func(w map[string]any) { set(w, "3", "model", "sd15") },
		errOutputsInvalid, "3", errBadLink, "model"},
	{"steps 0", func(w map[string]any) { set(w, "3", "steps", 0) }, errOutputsInvalid, "3", errTooSmall, "steps"},
	{"steps over the farm's limit", func(w map[string]any) { set(w, "3", "steps", 151) },
		errOutputsInvalid, "3", errTooBig, "steps"},
	{"seed over 2^53", func(w map[string]any) { set(w, "3", "seed", json.Number("18446744073709551615")) },
		errOutputsInvalid, "3", errTooBig, "seed"},
	{"cfg not a number", func(w map[string]any) { set(w, "3", "cfg", "lots") },
		errOutputsInvalid, "3", errInputType, "cfg"},
	{"unmapped sampler", func(w map[string]any) { set(w, "3", "sampler_name", "dpmpp_sde") },
		errOutputsInvalid, "3", errNotInList, "'dpmpp_sde' not in ['euler', 'euler_ancestral', 'dpmpp_2m', 'ddim']"},
	{"unmapped scheduler", func(w map[string]any) { set(w, "3", "scheduler", "exponential") },
		errOutputsInvalid, "3", errNotInList, "scheduler"},
	{"ddim with karras", func(w map[string]any) {
		set(w, "3", "sampler_name", "ddim")
		set(w, "3", "scheduler", "karras")
	}, errOutputsInvalid, "3", errCustom, "scheduler - "},
	{"pickle checkpoint", func(w map[string]any) { set(w, "4", "ckpt_name", "sd15.ckpt") },
		errOutputsInvalid, "4", errCustom, "pickle"},
	{"width not a multiple of 8", func(w map[string]any) { set(w, "5", "width", 500) },
		errOutputsInvalid, "5", errCustom, "width - 500 is not a multiple of 8"},
	{"empty prompt", func(w map[string]any) { set(w, "6", "text", "") },
		errOutputsInvalid, "6", errCustom, "text - empty prompt"},
	{"repeated seeds", func(w map[string]any) { set(w, "3", "seed", []any{5, 5}) },
		errOutputsInvalid, "3", errCustom, "seed - seed 5 repeats"},
	{"seeds and batch disagree", func(w map[string]any) {
		set(w, "3", "seed", []any{1, 2, 3})
		set(w, "5", "batch_size", 2)
	}, errOutputsInvalid, "5", errCustom, "batch_size"},
	{"denoise below 1 without an image", func(w map[string]any) { set(w, "3", "denoise", 0.5) },
		errOutputsInvalid, "3", errCustom, "denoise - 0.5 below 1 needs an image"},
	{"denoise that needs too many steps", func(w map[string]any) {
		img2img(w)
		set(w, "3", "denoise", 0.1)
	}, errOutputsInvalid, "3", errCustom, "schedule of 200 steps"},
	{"an image not uploaded", func(w map[string]any) {
		img2img(w)
		set(w, "10", "image", "elsewhere.png")
	}, errOutputsInvalid, "10", errCustom, "Invalid image file: elsewhere.png"},
	{"clip skips that differ", func(w map[string]any) {
		w["12"] = n("CLIPSetLastLayer", map[string]any{"clip": []any{"4", 1}, "stop_at_clip_layer": -2})
		set(w, "6", "clip", []any{"12", 0})
	}, errOutputsInvalid, "7", errCustom, "another layer"},
	{"VAE of another checkpoint", func(w map[string]any) {
		w["14"] = n("CheckpointLoaderSimple", map[string]any{"ckpt_name": "other"})
		set(w, "8", "vae", []any{"14", 2})
	}, errOutputsInvalid, "8", errCustom, "one checkpoint"},
	{"two samplers", func(w map[string]any) {
		w["20"] = n("KSampler", maps.Clone(w["3"].(map[string]any)["inputs"].(map[string]any)))
		w["21"] = n("VAEDecode", map[string]any{"samples": []any{"20", 0}, "vae": []any{"4", 2}})
		w["22"] = n("PreviewImage", map[string]any{"images": []any{"21", 0}})
	}, errOutputsInvalid, "21", errCustom, "one sampler per workflow"},
	{"chained samplers", func(w map[string]any) {
		w["20"] = n("KSampler", maps.Clone(w["3"].(map[string]any)["inputs"].(map[string]any)))
		set(w, "3", "latent_image", []any{"20", 0})
	}, errOutputsInvalid, "3", errCustom, "latent_image - comes from KSampler"},
	{"a saved upload", func(w map[string]any) {
		w["10"] = n("LoadImage", map[string]any{"image": "photo.png"})
		set(w, "9", "images", []any{"10", 0})
	}, errOutputsInvalid, "9", errCustom, "images - comes from LoadImage"},
	{"advanced sampler stops early", func(w map[string]any) {
		w["3"] = n("KSamplerAdvanced", map[string]any{"add_noise": "enable", "noise_seed": 8, "steps": 20, "cfg": 7.0,
			"sampler_name": "euler", "scheduler": "normal", "start_at_step": 0, "end_at_step": 12,
			"return_with_leftover_noise": "enable", "model": []any{"4", 0}, "positive": []any{"6", 0},
			"negative": []any{"7", 0}, "latent_image": []any{"5", 0}})
	}, errOutputsInvalid, "3", errCustom, "end_at_step - 12 stops before"},
	{"a cycle", func(w map[string]any) {
		w["12"] = n("CLIPSetLastLayer", map[string]any{"clip": []any{"13", 0}, "stop_at_clip_layer": -2})
		w["13"] = n("CLIPSetLastLayer", map[string]any{"clip": []any{"12", 0}, "stop_at_clip_layer": -2})
		set(w, "6", "clip", []any{"12", 0})
	}, errOutputsInvalid, "13", errBadLink, "cycle"},
}

func TestTranslate_Refusals(t *testing.T) {
	for _, tc := range refusals {
		t.Run(tc.name, func(t *testing.T) {
			w := defaultWorkflow()
			tc.edit(w)
			_, pe, _ := run(t, w)
			if pe == nil {
				t.Fatal("accepted")
			}
			if pe.Err.Type != tc.typ {
				t.Errorf("error type %s, want %s: %v", pe.Err.Type, tc.typ, pe)
			}
			if tc.node == "" {
				if len(pe.NodeErrors) != 0 {
					t.Errorf("node errors %v, want none", pe.NodeErrors)
				}
				return
			}
			ne, ok := pe.NodeErrors[tc.node]
			if !ok {
				t.Fatalf("no error for node %s: %v", tc.node, pe)
			}
			class := w[tc.node].(map[string]any)["class_type"]
			if ne.ClassType != class {
				t.Errorf("class_type %s, want %s", ne.ClassType, class)
			}
			found := false
			for _, e := range ne.Errors {
				found = found || (e.Type == tc.nodeType && strings.Contains(e.Details+" "+e.Message, tc.details))
			}
			if !found {
				t.Errorf("node %s errors %+v: want a %s mentioning %q", tc.node, ne.Errors, tc.nodeType, tc.details)
			}
		})
	}
}

// Errors name the outputs that depend on the node, and the whole reply has
// ComfyUI's JSON shape.
func TestTranslate_RefusalShape(t *testing.T) {
	w := defaultWorkflow()
	w["10"] = n("PreviewImage", map[string]any{"images": []any{"8", 0}})
	set(w, "5", "width", 0)
	_, pe, _ := run(t, w)
	if pe == nil {
		t.Fatal("accepted")
	}
	b, _ := json.Marshal(pe)
	var got map[string]any
	_ = json.Unmarshal(b, &got)
	want := map[string]any{
		"error": map[string]any{"type": errOutputsInvalid, "message": "Prompt outputs failed validation",
			"details": "Value 0 smaller than min of 8: width", "extra_info": map[string]any{}},
		"node_errors": map[string]any{"5": map[string]any{
			"errors": []any{map[string]any{"type": errTooSmall, "message": "Value 0 smaller than min of 8", "details": "width",
				"extra_info": map[string]any{"input_name": "width", "received_value": float64(0)}}},
			"dependent_outputs": []any{"9", "10"},
			"class_type":        "EmptyLatentImage",
		}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("reply\n got %s\nwant %s", b, mustJSON(want))
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestTranslate_PreviewImageIsTemp(t *testing.T) {
	w := defaultWorkflow()
	w["9"] = n("PreviewImage", map[string]any{"images": []any{"8", 0}})
	p, pe, _ := run(t, w)
	if pe != nil {
		t.Fatal(pe)
	}
	if want := []outputNode{{Node: "9", Type: "temp", Prefix: previewPrefix}}; !reflect.DeepEqual(p.outputs, want) {
		t.Errorf("outputs %+v, want %+v", p.outputs, want)
	}
}

// The farm's own validation at submit (image sizes) names the node too.
func TestPlan_RefuseMapsFieldsToNodes(t *testing.T) {
	w := defaultWorkflow()
	img2img(w)
	p, pe, _ := run(t, w)
	if pe != nil {
		t.Fatal(pe)
	}
	pe = p.refuse(wire.FieldErrors{{Field: "init_image", Reason: "is 63x48; its sides must be multiples of 8"},
		{Field: "priority", Reason: "odd"}})
	if e := pe.NodeErrors["10"]; e.ClassType != "LoadImage" || e.Errors[0].Details != "image - is 63x48; its sides must be multiples of 8" {
		t.Errorf("init_image error: %+v", pe.NodeErrors)
	}
	if e := pe.NodeErrors["3"]; len(e.Errors) != 1 || e.Errors[0].Details != "priority - odd" {
		t.Errorf("an unmapped field goes to the sampler: %+v", pe.NodeErrors)
	}
	if !reflect.DeepEqual(pe.NodeErrors["10"].DependentOutputs, []string{"9"}) {
		t.Errorf("dependent outputs %v", pe.NodeErrors["10"].DependentOutputs)
	}
}

// FuzzTranslate: no workflow, however broken, panics the translation; a
// refusal always says why.
func FuzzTranslate(f *testing.F) {
	b, _ := json.Marshal(defaultWorkflow())
	f.Add(b)
	w := defaultWorkflow()
	img2img(w)
	b, _ = json.Marshal(w)
	f.Add(b)
	f.Add([]byte(`{"1":{"class_type":"SaveImage","inputs":{"images":["1",0]}}}`))
	f.Add([]byte(`{"9":{"class_type":"SaveImage","inputs":{"images":["8",7]}},"8":null}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, pe := translate(context.Background(), data, &testImages{})
		if (p == nil) == (pe == nil) {
			t.Fatalf("plan %v and refusal %v", p, pe)
		}
		if pe != nil && pe.Err.Type == "" {
			t.Fatalf("a refusal without a type: %+v", pe)
		}
	})
}
