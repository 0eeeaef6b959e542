package tokenizer

import (
	"compress/gzip"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// writeTokenizerDir writes a tokenizer folder with the given files; a file
// whose content is "-" is left out.
func writeTokenizerDir(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		if content == "-" {
			continue
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// tinyVocab is a hand-made 8-token vocabulary with one merge ("a b</w>").
const (
	tinyVocab  = `{"a": 0, "b": 1, "a</w>": 2, "b</w>": 3, "ab</w>": 4, "!": 5, "<|startoftext|>": 6, "<|endoftext|>": 7}`
	tinyMerges = "#version: 0.2\na b</w>\n"
)

func TestTokenizer_Load_HandMadeVocab(t *testing.T) {
	dir := writeTokenizerDir(t, map[string]string{
		"vocab.json":              tinyVocab,
		"merges.txt":              tinyMerges,
		"tokenizer_config.json":   `{"model_max_length": 6, "pad_token": "<|endoftext|>"}`,
		"special_tokens_map.json": `{"pad_token": {"content": "!", "lstrip": false}}`,
	})
	tok, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	// special_tokens_map.json overrides tokenizer_config.json's pad token.
	if tok.Pad() != 5 || tok.BOS() != 6 || tok.EOS() != 7 || tok.MaxLength() != 6 || tok.VocabSize() != 8 {
		t.Fatalf("pad %d bos %d eos %d max %d vocab %d", tok.Pad(), tok.BOS(), tok.EOS(), tok.MaxLength(), tok.VocabSize())
	}
	if got, want := tok.Encode("AB a"), []int{4, 2}; !slices.Equal(got, want) {
		t.Errorf("Encode = %v, want %v", got, want)
	}
	if got, want := tok.EncodePadded("ab"), []int{6, 4, 7, 5, 5, 5}; !slices.Equal(got, want) {
		t.Errorf("EncodePadded = %v, want %v", got, want)
	}
	// 5 tokens truncated to MaxLength-2 = 4, then eos.
	if got, want := tok.EncodePadded("a a a a b"), []int{6, 2, 2, 2, 2, 7}; !slices.Equal(got, want) {
		t.Errorf("EncodePadded(long) = %v, want %v", got, want)
	}
	// "c" is not in the vocabulary: its symbol maps to unk (<|endoftext|>).
	if got, want := tok.Encode("c"), []int{7}; !slices.Equal(got, want) {
		t.Errorf("Encode(unknown) = %v, want %v", got, want)
	}
}

func TestTokenizer_Load_DefaultsWithoutConfigFiles(t *testing.T) {
	dir := writeTokenizerDir(t, map[string]string{"vocab.json": tinyVocab, "merges.txt": tinyMerges})
	tok, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if tok.Pad() != 7 || tok.BOS() != 6 || tok.EOS() != 7 || tok.MaxLength() != DefaultMaxLength {
		t.Fatalf("pad %d bos %d eos %d max %d, want pad 7 bos 6 eos 7 max 77", tok.Pad(), tok.BOS(), tok.EOS(), tok.MaxLength())
	}
}

func TestTokenizer_Load_Errors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files map[string]string
		want  []string // substrings of the error text
	}{
		{"missing_vocab", map[string]string{"vocab.json": "-", "merges.txt": tinyMerges},
			[]string{"tokenizer: open ", "vocab.json: no such file or directory"}},
		{"bad_vocab_json", map[string]string{"vocab.json": `{"a": 0,`, "merges.txt": tinyMerges},
			[]string{"vocab.json: invalid JSON: unexpected end of JSON input"}},
		{"vocab_not_object", map[string]string{"vocab.json": `["a"]`, "merges.txt": tinyMerges},
			[]string{"vocab.json: invalid JSON"}},
		{"vocab_id_gap", map[string]string{"vocab.json": `{"a": 0, "<|startoftext|>": 2, "<|endoftext|>": 3}`, "merges.txt": tinyMerges},
			[]string{"vocab.json: token \"<|endoftext|>\" has id 3 outside 0..2"}},
		{"empty_vocab", map[string]string{"vocab.json": `{}`, "merges.txt": tinyMerges},
			[]string{"vocab.json: empty vocabulary"}},
		{"missing_merges", map[string]string{"vocab.json": tinyVocab, "merges.txt": "-"},
			[]string{"merges.txt: no such file or directory"}},
		{"malformed_merge_line", map[string]string{"vocab.json": tinyVocab, "merges.txt": "#version: 0.2\na b</w>\na b c\n"},
			[]string{"merges.txt line 3: malformed merge \"a b c\": want 2 space-separated symbols, got 3"}},
		{"merge_line_one_symbol", map[string]string{"vocab.json": tinyVocab, "merges.txt": "#version: 0.2\nab\n"},
			[]string{"merges.txt line 2: malformed merge \"ab\"", "got 1"}},
		{"no_merges", map[string]string{"vocab.json": tinyVocab, "merges.txt": "#version: 0.2\n"},
			[]string{"merges.txt: no merges"}},
		{"bad_config_json", map[string]string{"vocab.json": tinyVocab, "merges.txt": tinyMerges, "tokenizer_config.json": "{"},
			[]string{"tokenizer_config.json: invalid JSON"}},
		{"bad_special_map_json", map[string]string{"vocab.json": tinyVocab, "merges.txt": tinyMerges, "special_tokens_map.json": "nope"},
			[]string{"special_tokens_map.json: invalid JSON"}},
		{"pad_token_wrong_type", map[string]string{"vocab.json": tinyVocab, "merges.txt": tinyMerges, "special_tokens_map.json": `{"pad_token": 3}`},
			[]string{"special_tokens_map.json: pad_token: want a string or an object with \"content\", got 3"}},
		{"pad_token_not_in_vocab", map[string]string{"vocab.json": tinyVocab, "merges.txt": tinyMerges, "special_tokens_map.json": `{"pad_token": "<pad>"}`},
			[]string{"pad token \"<pad>\" is not in the vocabulary"}},
		{"bos_missing_from_vocab", map[string]string{"vocab.json": `{"a": 0, "a</w>": 1, "<|endoftext|>": 2}`, "merges.txt": tinyMerges},
			[]string{"bos token \"<|startoftext|>\" is not in the vocabulary"}},
		{"max_length_not_integer", map[string]string{"vocab.json": tinyVocab, "merges.txt": tinyMerges, "tokenizer_config.json": `{"model_max_length": 76.5}`},
			[]string{"tokenizer_config.json: model_max_length: 76.5 is not an integer in 3..65536"}},
		{"max_length_huge", map[string]string{"vocab.json": tinyVocab, "merges.txt": tinyMerges, "tokenizer_config.json": `{"model_max_length": 1e30}`},
			[]string{"model_max_length: 1e+30 is not an integer"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := writeTokenizerDir(t, tc.files)
			tok, err := Load(dir)
			if err == nil {
				t.Fatalf("Load succeeded (vocab %d), want an error", tok.VocabSize())
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestTokenizer_Load_MissingVocabIsNotExist(t *testing.T) {
	_, err := Load(t.TempDir())
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("error %v, want fs.ErrNotExist", err)
	}
}

func TestTokenizer_LoadBPEGzip_Errors(t *testing.T) {
	dir := t.TempDir()
	notGzip := filepath.Join(dir, "plain.txt.gz")
	if err := os.WriteFile(notGzip, []byte("#version\na b\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	badLine := filepath.Join(dir, "bad.txt.gz")
	f, err := os.Create(badLine)
	if err != nil {
		t.Fatal(err)
	}
	zw := gzip.NewWriter(f)
	if _, err := zw.Write([]byte("#version: 0.2\ni n\nt h e\n")); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path string
		want string
	}{
		{filepath.Join(dir, "absent.txt.gz"), "absent.txt.gz: no such file or directory"},
		{notGzip, "plain.txt.gz: not gzip"},
		{badLine, "bad.txt.gz line 3: malformed merge \"t h e\""},
	} {
		_, err := LoadBPEGzip(tc.path)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("LoadBPEGzip(%s) error %v, want it to contain %q", filepath.Base(tc.path), err, tc.want)
		}
	}
}

func TestTokenizer_LoadBPEGzip_VocabLayout(t *testing.T) {
	fx := fixtureDir(t)
	tok, err := LoadBPEGzip(filepath.Join(fx, "tokenizer_golden", "bpe_simple_vocab_16e6.txt.gz"))
	if err != nil {
		t.Fatal(err)
	}
	// ids 0..255 byte symbols, 256..511 the same with </w>, 49406/49407 specials.
	for tokStr, want := range map[string]int{"!": 0, "Ā": 188, "!</w>": 256, "<|startoftext|>": 49406, "<|endoftext|>": 49407} {
		if got, ok := tok.encoder[tokStr]; !ok || got != want {
			t.Errorf("id of %q = %d (present %v), want %d", tokStr, got, ok, want)
		}
	}
	if tok.VocabSize() != 49408 || tok.Pad() != 49407 || tok.MaxLength() != 77 {
		t.Errorf("vocab %d pad %d max %d, want 49408 49407 77", tok.VocabSize(), tok.Pad(), tok.MaxLength())
	}
}
