package tokenizer

import (
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
)

// fixtureDir finds ../shared/fixtures/sd-tiny relative to the folder holding
// go.mod, failing the test when it is missing.
func fixtureDir(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test directory")
		}
		dir = parent
	}
	fixtures := filepath.Join(dir, "..", "shared", "fixtures", "sd-tiny")
	if _, err := os.Stat(filepath.Join(fixtures, "README.md")); err != nil {
		t.Fatalf("golden fixtures missing: %v", err)
	}
	return fixtures
}

type goldenFile struct {
	VocabSize int          `json:"vocab_size"`
	BOS       int          `json:"bos_id"`
	EOS       int          `json:"eos_id"`
	Cases     []goldenCase `json:"cases"`
}

type goldenCase struct {
	Prompt    string `json:"prompt"`
	IDs       []int  `json:"ids"`
	NTokens   int    `json:"n_tokens"`
	Truncated bool   `json:"truncated"`
	InputIDs  []int  `json:"input_ids_77"`
}

func readGolden(t *testing.T, path string) goldenFile {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var g goldenFile
	if err := json.Unmarshal(raw, &g); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if len(g.Cases) == 0 {
		t.Fatalf("%s: no cases", path)
	}
	return g
}

// checkGolden runs every case through tok and reports how many matched.
func checkGolden(t *testing.T, tok *Tokenizer, g goldenFile) {
	t.Helper()
	if tok.VocabSize() != g.VocabSize || tok.BOS() != g.BOS || tok.EOS() != g.EOS || tok.Pad() != g.EOS || tok.MaxLength() != 77 {
		t.Fatalf("vocab %d bos %d eos %d pad %d max %d, want vocab %d bos %d eos %d pad %d max 77",
			tok.VocabSize(), tok.BOS(), tok.EOS(), tok.Pad(), tok.MaxLength(), g.VocabSize, g.BOS, g.EOS, g.EOS)
	}
	passed := 0
	for i, c := range g.Cases {
		ids := tok.Encode(c.Prompt)
		padded := tok.EncodePadded(c.Prompt)
		ok := true
		if !slices.Equal(ids, c.IDs) || len(ids) != c.NTokens {
			t.Errorf("case %d %q: Encode\n got %v\nwant %v", i, c.Prompt, ids, c.IDs)
			ok = false
		}
		if !slices.Equal(padded, c.InputIDs) {
			t.Errorf("case %d %q: EncodePadded\n got %v\nwant %v", i, c.Prompt, padded, c.InputIDs)
			ok = false
		}
		if truncated := len(ids) > tok.MaxLength()-2; truncated != c.Truncated {
			t.Errorf("case %d %q: truncated %v, want %v", i, c.Prompt, truncated, c.Truncated)
			ok = false
		}
		if ok {
			passed++
		}
	}
	t.Logf("%d/%d golden cases match", passed, len(g.Cases))
}

func TestTokenizer_Load_TinyGolden(t *testing.T) {
	fx := fixtureDir(t)
	tok, err := Load(filepath.Join(fx, "model", "tokenizer"))
	if err != nil {
		t.Fatal(err)
	}
	checkGolden(t, tok, readGolden(t, filepath.Join(fx, "golden", "tiny_tokenizer_cases.json")))
}

func TestTokenizer_LoadBPEGzip_FullGolden(t *testing.T) {
	fx := fixtureDir(t)
	tok, err := LoadBPEGzip(filepath.Join(fx, "tokenizer_golden", "bpe_simple_vocab_16e6.txt.gz"))
	if err != nil {
		t.Fatal(err)
	}
	checkGolden(t, tok, readGolden(t, filepath.Join(fx, "tokenizer_golden", "clip_tokenizer_cases.json")))
}

// goldenInputIDs reads the F32 [2,77] input_ids tensor of a golden
// safetensors file (ids are exact integers stored as float32).
func goldenInputIDs(t *testing.T, path string) [][]int {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	n := binary.LittleEndian.Uint64(raw[:8])
	var header map[string]json.RawMessage
	if err := json.Unmarshal(raw[8:8+n], &header); err != nil {
		t.Fatalf("%s: header: %v", path, err)
	}
	var info struct {
		DType   string   `json:"dtype"`
		Shape   []int    `json:"shape"`
		Offsets [2]int64 `json:"data_offsets"`
	}
	if err := json.Unmarshal(header["input_ids"], &info); err != nil {
		t.Fatalf("%s: input_ids: %v", path, err)
	}
	if info.DType != "F32" || len(info.Shape) != 2 || info.Shape[1] != 77 {
		t.Fatalf("%s: input_ids is %s %v, want F32 [N 77]", path, info.DType, info.Shape)
	}
	data := raw[8+int64(n)+info.Offsets[0] : 8+int64(n)+info.Offsets[1]]
	rows := make([][]int, info.Shape[0])
	for r := range rows {
		rows[r] = make([]int, 77)
		for c := range rows[r] {
			bits := binary.LittleEndian.Uint32(data[4*(r*77+c):])
			rows[r][c] = int(math.Float32frombits(bits))
		}
	}
	return rows
}

func TestTokenizer_EncodePadded_TextEncoderGoldens(t *testing.T) {
	fx := fixtureDir(t)
	prompts := []string{"a photo of an astronaut riding a horse on mars", ""}
	for _, tc := range []struct {
		name, dir, golden string
		pad               int
	}{
		{"sd1_pads_with_eos", "model", "text_encoder.safetensors", 999},
		{"model_v_pads_with_bang", "model-v", "v_text_encoder.safetensors", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tok, err := Load(filepath.Join(fx, tc.dir, "tokenizer"))
			if err != nil {
				t.Fatal(err)
			}
			if tok.Pad() != tc.pad || tok.BOS() != 998 || tok.EOS() != 999 {
				t.Fatalf("pad %d bos %d eos %d, want pad %d bos 998 eos 999", tok.Pad(), tok.BOS(), tok.EOS(), tc.pad)
			}
			want := goldenInputIDs(t, filepath.Join(fx, "golden", tc.golden))
			for i, p := range prompts {
				if got := tok.EncodePadded(p); !slices.Equal(got, want[i]) {
					t.Errorf("prompt %q:\n got %v\nwant %v", p, got, want[i])
				}
			}
		})
	}
}

func TestTokenizer_Encode_Concurrent(t *testing.T) {
	fx := fixtureDir(t)
	tok, err := Load(filepath.Join(fx, "model", "tokenizer"))
	if err != nil {
		t.Fatal(err)
	}
	prompt := "a fantasy landscape, trending on artstation"
	want := tok.Encode(prompt)
	var wg sync.WaitGroup
	errs := make(chan string, 8)
	for range 8 {
		wg.Go(func() {
			for range 50 {
				if got := tok.Encode(prompt); !slices.Equal(got, want) {
					errs <- "concurrent Encode differs"
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatal(e)
	}
}

func FuzzTokenizer_EncodePadded(f *testing.F) {
	fx := fixtureDir(f)
	tok, err := Load(filepath.Join(fx, "model", "tokenizer"))
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{"", "a photo", "&amp;&#0;&#x110000;", "\xff\xfe<|endoftext|>", "ΟΔΟΣ İ ﬁ ｶ", "â€\u009d\x1b[31m"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ids := tok.EncodePadded(s)
		if len(ids) != tok.MaxLength() || ids[0] != tok.BOS() {
			t.Fatalf("EncodePadded(%q) = %v", s, ids)
		}
		for _, id := range ids {
			if id < 0 || id >= tok.VocabSize() {
				t.Fatalf("EncodePadded(%q): id %d outside vocab", s, id)
			}
		}
	})
}
