package pipeline

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"image"
	"image/png"
	"strings"
	"testing"
	"unicode/utf8"
)

// a1111Texts are parameters texts as the webui writes them, with what they
// read as.
var a1111Texts = []struct {
	name, text string
	want       Request
	model      string
	hash       string
	fields     map[string]string // some other fields, unquoted
}{
	{
		// 1.10: quoted values (extra-network hashes), hires fix.
		name: "quoted values",
		text: `photo of a woman in a red coat, city street at night, bokeh, <lora:add_detail:0.6>
Negative prompt: (worst quality, low quality:1.4), watermark
Steps: 30, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 6.5, Seed: 2736491823, Size: 512x768, Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, Denoising strength: 0.45, Hires upscale: 2, Hires steps: 15, Hires upscaler: R-ESRGAN 4x+, Lora hashes: "add_detail: 7c6bad76eb54", TI hashes: "EasyNegative: c74b4e810b03, badhandv4: 5e40d722fc3d", Version: v1.10.1`,
		want: Request{Prompt: "photo of a woman in a red coat, city street at night, bokeh, <lora:add_detail:0.6>",
			NegativePrompt: "(worst quality, low quality:1.4), watermark", Steps: 30, Sampler: "dpmpp_2m", Schedule: "karras",
			CFGScale: 6.5, Seed: 2736491823, Width: 512, Height: 768, Strength: 0.45},
		model: "v1-5-pruned-emaonly", hash: "6ce0161689",
		fields: map[string]string{"Lora hashes": "add_detail: 7c6bad76eb54", "TI hashes": "EasyNegative: c74b4e810b03, badhandv4: 5e40d722fc3d",
			"Hires upscaler": "R-ESRGAN 4x+", "Version": "v1.10.1"},
	},
	{
		// 1.9: a negative prompt over two lines, Clip skip 2, the default schedule.
		name: "negative prompt",
		text: `masterpiece, best quality, 1girl, solo, (smile:1.2), cherry blossoms
Negative prompt: lowres, bad anatomy, bad hands, text, error,
missing fingers, extra digit, cropped, worst quality
Steps: 28, Sampler: Euler a, Schedule type: Automatic, CFG scale: 11, Seed: 3052874513, Size: 512x704, Model hash: 7f96a1a9ca, Model: anything-v5-PrtRE, VAE hash: 735e4c3a44, VAE: kl-f8-anime2.ckpt, Clip skip: 2, ENSD: 31337, Version: v1.9.4`,
		want: Request{Prompt: "masterpiece, best quality, 1girl, solo, (smile:1.2), cherry blossoms",
			NegativePrompt: "lowres, bad anatomy, bad hands, text, error,\nmissing fingers, extra digit, cropped, worst quality", Steps: 28,
			Sampler: "euler_a", Schedule: "default", CFGScale: 11, Seed: 3052874513, Width: 512, Height: 704, ClipSkip: 1},
		model: "anything-v5-PrtRE", hash: "7f96a1a9ca",
		fields: map[string]string{"VAE": "kl-f8-anime2.ckpt", "ENSD": "31337"},
	},
	{
		// 1.6: Clip skip 2, the schedule in the sampler's name, no Schedule type.
		name: "clip skip 2",
		text: `a cozy cabin in the snowy woods, warm light in the windows, highly detailed
Steps: 25, Sampler: DPM++ 2M Karras, CFG scale: 7, Seed: 42, Size: 768x512, Model hash: 4199bcdd14, Model: revAnimated_v122, Clip skip: 2, Version: v1.6.0`,
		want: Request{Prompt: "a cozy cabin in the snowy woods, warm light in the windows, highly detailed",
			Steps: 25, Sampler: "dpmpp_2m", Schedule: "karras", CFGScale: 7, Seed: 42, Width: 768, Height: 512, ClipSkip: 1},
		model: "revAnimated_v122", hash: "4199bcdd14",
	},
	{
		// 1.9+: DPM++ 2M's automatic schedule is Karras in the webui.
		name:  "DPM++ 2M automatic",
		text:  "a red fox\nSteps: 20, Sampler: DPM++ 2M, Schedule type: Automatic, CFG scale: 7, Seed: 1, Size: 512x512, Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, RNG: CPU, Version: v1.10.1",
		want:  Request{Prompt: "a red fox", Steps: 20, Sampler: "dpmpp_2m", Schedule: "karras", CFGScale: 7, Seed: 1, Width: 512, Height: 512},
		model: "v1-5-pruned-emaonly", hash: "6ce0161689",
		fields: map[string]string{"RNG": "CPU"},
	},
	{
		// Before 1.9 DPM++ 2M without a schedule was not Karras.
		name: "DPM++ 2M before 1.9",
		text: "a red fox\nSteps: 20, Sampler: DPM++ 2M, CFG scale: 7, Seed: 1, Size: 512x512, Version: v1.8.0",
		want: Request{Prompt: "a red fox", Steps: 20, Sampler: "dpmpp_2m", Schedule: "default", CFGScale: 7, Seed: 1, Width: 512, Height: 512},
	},
}

func TestParseParameters_A1111(t *testing.T) {
	for _, tc := range a1111Texts {
		t.Run(tc.name, func(t *testing.T) {
			got, model, hash, err := ParseParameters(tc.text)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want || model != tc.model || hash != tc.hash {
				t.Errorf("ParseParameters =\n%+v %q %q\nwant\n%+v %q %q", got, model, hash, tc.want, tc.model, tc.hash)
			}
			it := ParseInfotext(tc.text)
			for k, want := range tc.fields {
				if v, ok := it.Get(k); v != want {
					t.Errorf("field %s = %q (present %v), want %q", k, v, ok, want)
				}
			}
			// Written again, the settings read the same.
			again, model2, hash2, err := ParseParameters(Parameters(got, model, hash))
			if err != nil || again != got || model2 != model || hash2 != hash {
				t.Errorf("after Parameters: %+v %q %q (%v)", again, model2, hash2, err)
			}
		})
	}
}

func TestParameters_Format(t *testing.T) {
	v := Version()
	initImg := image.NewNRGBA(image.Rect(0, 0, 512, 512))
	for _, tc := range []struct {
		name        string
		req         Request
		model, hash string
		want        string
	}{
		{"karras, clip skip, negative", Request{Prompt: "a red circle", NegativePrompt: "blurry", Width: 512, Height: 768, Steps: 20,
			CFGScale: 7, Sampler: "dpmpp_2m", Schedule: "karras", Seed: 42, ClipSkip: 1}, "sd15", "abcdef0123",
			"a red circle\nNegative prompt: blurry\nSteps: 20, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7, Seed: 42, Size: 512x768, Model hash: abcdef0123, Model: sd15, Clip skip: 2, RNG: CPU, Version: " + v},
		{"default schedule", Request{Prompt: "x", Width: 64, Height: 64, Steps: 4, CFGScale: 7.5, Sampler: "euler_a", Schedule: "default", Seed: 1}, "", "",
			"x\nSteps: 4, Sampler: Euler a, Schedule type: Automatic, CFG scale: 7.5, Seed: 1, Size: 64x64, RNG: CPU, Version: " + v},
		{"ays", Request{Prompt: "x", Width: 64, Height: 64, Steps: 10, CFGScale: 5, Sampler: "euler", Schedule: "ays", Seed: 1}, "", "",
			"x\nSteps: 10, Sampler: Euler, Schedule type: Align Your Steps, CFG scale: 5, Seed: 1, Size: 64x64, RNG: CPU, Version: " + v},
		{"img2img strength", Request{Prompt: "a red circle", Width: 512, Height: 512, Steps: 20, CFGScale: 7, Sampler: "euler",
			Schedule: "default", Seed: 42, ClipSkip: 1, InitImage: initImg, Strength: 0.6}, "sd15", "",
			"a red circle\nSteps: 20, Sampler: Euler, Schedule type: Automatic, CFG scale: 7, Seed: 42, Size: 512x512, Model: sd15, Denoising strength: 0.6, Clip skip: 2, RNG: CPU, Version: " + v},
		{"img2img default strength", Request{Prompt: "p", Steps: 2, CFGScale: 7, Sampler: "ddim", Schedule: "default", InitImage: initImg}, "", "",
			"p\nSteps: 2, Sampler: DDIM, Schedule type: Automatic, CFG scale: 7, Seed: 0, Size: 0x0, Denoising strength: 0.75, RNG: CPU, Version: " + v},
		{"quoted model name", Request{Prompt: "p", Width: 8, Height: 8, Steps: 1, CFGScale: 1, Sampler: "euler", Seed: 3}, `my model, v2: "final"`, "",
			`p` + "\n" + `Steps: 1, Sampler: Euler, Schedule type: Automatic, CFG scale: 1, Seed: 3, Size: 8x8, Model: "my model, v2: \"final\"", RNG: CPU, Version: ` + v},
		{"no prompt, untrimmed", Request{Prompt: "  ", NegativePrompt: "bad", Width: 8, Height: 8, Steps: 1, CFGScale: 0.25, Sampler: "euler", Seed: 3}, "", "",
			"Negative prompt: bad\nSteps: 1, Sampler: Euler, Schedule type: Automatic, CFG scale: 0.25, Seed: 3, Size: 8x8, RNG: CPU, Version: " + v},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Parameters(tc.req, tc.model, tc.hash); got != tc.want {
				t.Errorf("Parameters =\n%q\nwant\n%q", got, tc.want)
			}
		})
	}
}

func TestParameters_RoundTrip(t *testing.T) {
	for _, req := range []Request{
		{Prompt: "a red circle", NegativePrompt: "blurry", Width: 512, Height: 768, Steps: 20, CFGScale: 7, Sampler: "dpmpp_2m", Schedule: "karras", Seed: 42, ClipSkip: 1},
		{Prompt: "a lighthouse, \"oil\": 1.2\nsecond line", NegativePrompt: "low quality,\nblurry: 1.4", Width: 64, Height: 32, Steps: 3,
			CFGScale: 7.25, Sampler: "euler_a", Schedule: "default", Seed: 18446744073709551615},
		{Prompt: "日本 ✨", NegativePrompt: "ぼやけ", Width: 8, Height: 8, Steps: 1, CFGScale: 1e-05, Sampler: "dpmpp_2m", Schedule: "default", Seed: 7, Strength: 0.3},
		{Prompt: "x", Width: 8, Height: 8, Steps: 10, CFGScale: 3, Sampler: "ddim", Schedule: "default", Seed: 9, ClipSkip: 11},
		{Prompt: "x", Width: 8, Height: 8, Steps: 10, CFGScale: 3, Sampler: "euler", Schedule: "ays", Seed: 9},
	} {
		for _, model := range [][2]string{{"sd15", "abcdef0123"}, {`a "model", with: everything` + "\n", ""}, {" padded ", "h"}, {`"quoted"`, ""}} {
			text := Parameters(req, model[0], model[1])
			got, name, hash, err := ParseParameters(text)
			if err != nil {
				t.Fatalf("%q: %v", text, err)
			}
			if got != req || name != model[0] || hash != model[1] {
				t.Errorf("%q read back as\n%+v %q %q\nwant\n%+v %q %q", text, got, name, hash, req, model[0], model[1])
			}
		}
	}
}

func TestParseParameters_Errors(t *testing.T) {
	text := "p\nSteps: x, Sampler: DPM++ SDE, Schedule type: Exponential, CFG scale: nan, Seed: 5, Size: 64x48"
	req, _, _, err := ParseParameters(text)
	var keys []string
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		var pe *ParameterError
		if !errors.As(e, &pe) {
			t.Fatalf("%v is not a *ParameterError", e)
		}
		keys = append(keys, pe.Key)
	}
	if got := strings.Join(keys, ","); got != "Steps,Sampler,Schedule type,CFG scale" {
		t.Errorf("errors for %s, want Steps,Sampler,Schedule type,CFG scale: %v", got, err)
	}
	if !strings.Contains(err.Error(), `Sampler "DPM++ SDE": farm has no such sampler (it has Euler, Euler a, DDIM, DPM++ 2M)`) {
		t.Errorf("error %q", err)
	}
	if req.Seed != 5 || req.Width != 64 || req.Height != 48 || req.Prompt != "p" {
		t.Errorf("the readable fields were not kept: %+v", req)
	}
	for _, text := range []string{"", "just a prompt", "a prompt\nSteps: 20, Sampler: Euler"} {
		if _, _, _, err := ParseParameters(text); !errors.Is(err, ErrNoSettings) {
			t.Errorf("ParseParameters(%q) = %v, want ErrNoSettings", text, err)
		}
	}
}

func TestQuote(t *testing.T) {
	// Expected values are Python's json.dumps(v, ensure_ascii=False) where
	// infotext_utils.quote quotes.
	for _, tc := range [][2]string{
		{"plain", "plain"},
		{`say "hi"`, `say "hi"`},
		{"a, b", `"a, b"`},
		{"k: v", `"k: v"`},
		{"line\nbreak", `"line\nbreak"`},
		{"日本: ✨", `"日本: ✨"`},
		{"tab\t,\x01\x7f\\", `"tab\t,\u0001` + "\x7f" + `\\"`},
		{`"quoted"`, `"\"quoted\""`},
		{" lead", `" lead"`},
		{"", `""`},
	} {
		if got := quote(tc[0]); got != tc[1] {
			t.Errorf("quote(%q) = %s, want %s", tc[0], got, tc[1])
		}
		if got := unquote(quote(tc[0])); got != tc[0] {
			t.Errorf("unquote(quote(%q)) = %q", tc[0], got)
		}
	}
}

func TestVersion(t *testing.T) {
	if v := Version(); !strings.HasPrefix(v, "latentfarm ") || strings.ContainsAny(v, ",:\n") {
		t.Errorf("Version() = %q", v)
	}
	if !ParseInfotext(Parameters(Request{Prompt: "x"}, "", "")).Ours() || ParseInfotext(a1111Texts[0].text).Ours() {
		t.Error("Ours() does not tell our texts from the webui's")
	}
}

// chunk builds a PNG chunk.
func chunk(typ string, body []byte) []byte {
	c := binary.BigEndian.AppendUint32(nil, uint32(len(body)))
	c = append(c, typ...)
	c = append(c, body...)
	return binary.BigEndian.AppendUint32(c, crc32.ChecksumIEEE(c[4:]))
}

// pngWith returns a 2x2 PNG with the chunks after IHDR.
func pngWith(t testing.TB, chunks ...[]byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := png.Encode(&buf, image.NewGray(image.Rect(0, 0, 2, 2))); err != nil {
		t.Fatal(err)
	}
	data := buf.Bytes()
	out := append([]byte{}, data[:33]...)
	for _, c := range chunks {
		out = append(out, c...)
	}
	return append(out, data[33:]...)
}

func zlibBytes(b []byte) []byte {
	var buf bytes.Buffer
	zw := zlib.NewWriter(&buf)
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}

func join(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func TestEncodePNG_TextOrInternationalText(t *testing.T) {
	for _, tc := range []struct {
		text, typ string
	}{
		{"a café, 20°\nSteps: 20", "tEXt"},
		{"日本 ✨\nNegative prompt: ぼやけ", "iTXt"},
	} {
		var buf bytes.Buffer
		if err := EncodePNG(&buf, image.NewGray(image.Rect(0, 0, 4, 4)), tc.text); err != nil {
			t.Fatal(err)
		}
		data := buf.Bytes()
		if got := string(data[33+4 : 33+8]); got != tc.typ {
			t.Errorf("%q: chunk after IHDR is %s, want %s", tc.text, got, tc.typ)
		}
		if _, err := png.Decode(bytes.NewReader(data)); err != nil {
			t.Errorf("%q: image/png cannot read the file: %v", tc.text, err)
		}
		texts, err := ReadPNGText(bytes.NewReader(data))
		if err != nil || texts["parameters"] != tc.text {
			t.Errorf("read back %q (%v), want %q", texts["parameters"], err, tc.text)
		}
	}
}

// textPNGs are PNGs with text in every form, and what ReadPNGText reads.
func textPNGs(t testing.TB) []struct {
	name string
	data []byte
	want map[string]string
} {
	latin := []byte("caf\xe9") // "café" in Latin-1
	return []struct {
		name string
		data []byte
		want map[string]string
	}{
		{"tEXt", pngWith(t, chunk("tEXt", join([]byte("parameters\x00"), latin))), map[string]string{"parameters": "café"}},
		{"zTXt", pngWith(t, chunk("zTXt", join([]byte("Comment\x00\x00"), zlibBytes(latin)))), map[string]string{"Comment": "café"}},
		{"iTXt", pngWith(t, chunk("iTXt", []byte("parameters\x00\x00\x00en\x00Parameter\x00日本 ✨"))), map[string]string{"parameters": "日本 ✨"}},
		{"iTXt compressed", pngWith(t, chunk("iTXt", join([]byte("parameters\x00\x01\x00\x00\x00"), zlibBytes([]byte("日本 ✨"))))),
			map[string]string{"parameters": "日本 ✨"}},
		{"later wins", pngWith(t, chunk("tEXt", []byte("k\x00one")), chunk("iTXt", []byte("k\x00\x00\x00\x00\x00two"))), map[string]string{"k": "two"}},
		{"no NUL", pngWith(t, chunk("tEXt", []byte("Title"))), map[string]string{"Title": ""}},
		{"bad zlib skipped", pngWith(t, chunk("zTXt", []byte("a\x00\x00not zlib")), chunk("tEXt", []byte("b\x00ok"))), map[string]string{"b": "ok"}},
		{"unknown compression skipped", pngWith(t, chunk("zTXt", join([]byte("a\x00\x07"), zlibBytes([]byte("x")))),
			chunk("iTXt", join([]byte("b\x00\x01\x05\x00\x00"), zlibBytes([]byte("y"))))), map[string]string{}},
		{"short iTXt skipped", pngWith(t, chunk("iTXt", []byte("a\x00\x00")), chunk("iTXt", []byte("b\x00\x00\x00en"))), map[string]string{}},
	}
}

func TestReadPNGText(t *testing.T) {
	for _, tc := range textPNGs(t) {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ReadPNGText(bytes.NewReader(tc.data))
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
			for k, v := range tc.want {
				if got[k] != v {
					t.Errorf("%s = %q, want %q", k, got[k], v)
				}
			}
		})
	}
}

func TestReadPNGText_ZipBombSkipped(t *testing.T) {
	bomb := zlibBytes(make([]byte, maxText+1))
	data := pngWith(t, chunk("zTXt", join([]byte("bomb\x00\x00"), bomb)), chunk("tEXt", []byte("parameters\x00x")))
	got, err := ReadPNGText(bytes.NewReader(data))
	if err != nil || len(got) != 1 || got["parameters"] != "x" {
		t.Errorf("got %q, %v; want only parameters", got, err)
	}
}

func TestReadPNGText_Broken(t *testing.T) {
	good := pngWith(t, chunk("tEXt", []byte("parameters\x00x")))
	badCRC := append([]byte{}, good...)
	badCRC[33+8+5] ^= 1 // a byte of the tEXt body
	huge := pngWith(t, []byte("\x80\x00\x00\x00tEXt"))
	for _, tc := range []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "pipeline: not a PNG file"},
		{"not a PNG", []byte("GIF89a......"), "pipeline: not a PNG file"},
		{"CRC", badCRC, "pipeline: png: tEXt chunk at offset 33: CRC mismatch"},
		{"truncated chunk", good[:45], "pipeline: png: tEXt chunk at offset 33: truncated"},
		{"no IEND", good[:len(good)-12], "before IEND"},
		{"length over 2^31", huge, "length 2147483648 is over 2^31-1"},
		{"not a chunk type", pngWith(t, []byte("\x00\x00\x00\x00t\x00Xt")), `"t\x00Xt" is not a chunk type`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ReadPNGText(bytes.NewReader(tc.data))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func FuzzReadPNGText(f *testing.F) {
	for _, tc := range textPNGs(f) {
		f.Add(tc.data)
	}
	var buf bytes.Buffer
	EncodePNG(&buf, image.NewGray(image.Rect(0, 0, 2, 2)), a1111Texts[0].text)
	f.Add(buf.Bytes())
	f.Add(buf.Bytes()[:60])
	f.Add([]byte(pngSignature))
	f.Add(pngWith(f, []byte("\xff\xff\xff\xfftEXt")))
	f.Fuzz(func(t *testing.T, data []byte) {
		texts, err := ReadPNGText(bytes.NewReader(data))
		if err != nil {
			return
		}
		// What was read is written and read back unchanged.
		for k, v := range texts {
			if k == "" || len(k) > 79 || strings.IndexFunc(k, func(r rune) bool { return r < 0x20 || r > 0x7e }) >= 0 {
				continue
			}
			back, err := ReadPNGText(bytes.NewReader(pngWith(t, textChunk(k, v))))
			if err != nil || back[k] != v {
				t.Fatalf("%s: %q read back as %q (%v)", k, v, back[k], err)
			}
		}
	})
}

func FuzzParseParameters(f *testing.F) {
	for _, tc := range a1111Texts {
		f.Add(tc.text)
	}
	f.Add(Parameters(Request{Prompt: "日本 ✨", NegativePrompt: "a,\nb", Steps: 3, CFGScale: 7.5, Sampler: "euler", Seed: 5, Width: 8, Height: 8, ClipSkip: 2},
		`model: "x"`, "abc"))
	f.Add("p\nSteps: 1, Sampler: Euler, CFG scale: 1, Seed: 1, Size: 8x8, Model: \"a\\\"b\\u00e9\"")
	f.Add("\nNegative prompt:\nNegative prompt: x\n\nA: 1, B: \"\", C: \"x\\\"")
	f.Add("Steps: 20, Sampler: Euler, Seed: -1, Size: 1x, Clip skip: -3, CFG scale: 1e400")
	f.Fuzz(func(t *testing.T, text string) {
		it := ParseInfotext(text)
		req, name, hash, err := ParseParameters(text)
		if !utf8.ValidString(text) {
			return // the webui's texts are Unicode strings; bytes that are not UTF-8 do not round-trip through JSON
		}
		// The split text, written again, splits the same. (A settings line
		// counts when the pattern finds three fields in it, empty ones
		// included, which are then dropped: one or two left are not enough.)
		if !keyOnlyField(it) && (len(it.Fields) == 0 || len(it.Fields) >= 3) {
			if again := ParseInfotext(it.String()); !equalInfotext(again, it) {
				t.Fatalf("%q split as\n%+v\nwritten as %q splits as\n%+v", text, it, it.String(), again)
			}
		}
		if err != nil || name == "Model" || hash == "Model hash" {
			return
		}
		// The request, written again, reads the same.
		text2 := Parameters(req, name, hash)
		req2, name2, hash2, err := ParseParameters(text2)
		if err != nil || req2 != req || name2 != name || hash2 != hash {
			t.Fatalf("%q read as %+v %q %q\nwritten as %q read as %+v %q %q (%v)", text, req, name, hash, text2, req2, name2, hash2, err)
		}
	})
}

// keyOnlyField reports whether a field's value is its key, which the
// webui writes as the key alone and cannot read back.
func keyOnlyField(it Infotext) bool {
	for _, f := range it.Fields {
		if f.Key == f.Value {
			return true
		}
	}
	return false
}

func equalInfotext(a, b Infotext) bool {
	if a.Prompt != b.Prompt || a.NegativePrompt != b.NegativePrompt || len(a.Fields) != len(b.Fields) {
		return false
	}
	for i := range a.Fields {
		if a.Fields[i] != b.Fields[i] {
			return false
		}
	}
	return true
}
