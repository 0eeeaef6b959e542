package tokenizer

import (
	"bytes"
	"compress/gzip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// fuzzPrompts are encoded by every tokenizer the fuzz targets accept:
// words that merge, unknown symbols, the special tokens spelt out, and a
// prompt longer than any max length.
var fuzzPrompts = []string{"", "a b ab", "AB a!", "<|startoftext|>x<|endoftext|>", "日本 ✨ \xff", strings.Repeat("ab ", 100)}

// checkTokenizer asserts what every loaded tokenizer must give: special
// ids and every encoded id inside the vocabulary (they index the text
// encoder's embedding table), and exactly MaxLength padded ids.
func checkTokenizer(t *testing.T, tok *Tokenizer) {
	t.Helper()
	n := tok.VocabSize()
	for _, id := range []int{tok.BOS(), tok.EOS(), tok.Pad()} {
		if id < 0 || id >= n {
			t.Fatalf("special id %d outside a vocabulary of %d", id, n)
		}
	}
	if tok.MaxLength() < 3 || tok.MaxLength() > 1<<16 {
		t.Fatalf("max length %d", tok.MaxLength())
	}
	for _, p := range fuzzPrompts {
		ids := tok.EncodePadded(p)
		if len(ids) != tok.MaxLength() || ids[0] != tok.BOS() {
			t.Fatalf("EncodePadded(%q) = %v", p, ids)
		}
		for _, id := range ids {
			if id < 0 || id >= n {
				t.Fatalf("EncodePadded(%q): id %d outside a vocabulary of %d", p, id, n)
			}
		}
		if again := tok.EncodePadded(p); !slices.Equal(again, ids) {
			t.Fatalf("EncodePadded(%q) is not stable: %v then %v", p, ids, again)
		}
	}
}

// FuzzLoad feeds a diffusers tokenizer folder (vocab.json, merges.txt and
// the optional tokenizer_config.json and special_tokens_map.json; an empty
// input leaves an optional file out) to Load. A model folder is untrusted:
// it comes from the model store. Bad files give an error naming the
// tokenizer; an accepted tokenizer only ever yields ids inside its
// vocabulary, and CRLF line ends in merges.txt change nothing.
func FuzzLoad(f *testing.F) {
	f.Add([]byte(tinyVocab), []byte(tinyMerges), []byte(`{"model_max_length": 6}`), []byte(`{"pad_token": {"content": "!"}}`))
	f.Add([]byte(tinyVocab), []byte("#version: 0.2\r\na b</w>\r\n"), []byte{}, []byte{})
	f.Add([]byte(`{"a": 0, "a": 1}`), []byte("a a"), []byte(`{"model_max_length": 1e30}`), []byte(`{"bos_token": null}`))
	dir := fuzzScratch(f)
	f.Fuzz(func(t *testing.T, vocab, merges, config, special []byte) {
		for name, data := range map[string][]byte{"vocab.json": vocab, "merges.txt": merges,
			"tokenizer_config.json": config, "special_tokens_map.json": special} {
			path := filepath.Join(dir, name)
			if len(data) == 0 && name != "vocab.json" && name != "merges.txt" {
				os.Remove(path)
				continue
			}
			if err := os.WriteFile(path, data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		tok, err := Load(dir)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "tokenizer: ") {
				t.Fatalf("error without its component: %v", err)
			}
			return
		}
		checkTokenizer(t, tok)
		// merges.txt written with CRLF reads the same.
		crlf := bytes.ReplaceAll(bytes.ReplaceAll(merges, []byte("\r\n"), []byte("\n")), []byte("\n"), []byte("\r\n"))
		if err := os.WriteFile(filepath.Join(dir, "merges.txt"), crlf, 0o644); err != nil {
			t.Fatal(err)
		}
		tok2, err := Load(dir)
		if err != nil {
			t.Fatalf("merges with CRLF line ends: %v", err)
		}
		for _, p := range fuzzPrompts {
			if a, b := tok.EncodePadded(p), tok2.EncodePadded(p); !slices.Equal(a, b) {
				t.Fatalf("EncodePadded(%q): %v with LF merges, %v with CRLF", p, a, b)
			}
		}
	})
}

// FuzzLoadBPEGzip feeds the text of a bpe_simple_vocab_16e6.txt.gz (given
// as --tokenizer with a single-file checkpoint) to LoadBPEGzip, gzipped by
// the target so the fuzzer works on the merges themselves. Bad files give
// an error naming the tokenizer; an accepted tokenizer only ever yields ids
// inside its vocabulary.
func FuzzLoadBPEGzip(f *testing.F) {
	f.Add([]byte("\"bpe_simple_vocab_16e6.txt#version: 0.2\ni n\nt h\na n\nr e\na r\ne r\nth e</w>\n"))
	f.Add([]byte("#version: 0.2\na b\nab c\na bc\n"))
	f.Add([]byte("#version: 0.2\n\xff \xfe\n"))
	f.Add([]byte("#version: 0.2\na b c\n"))
	path := filepath.Join(fuzzScratch(f), "bpe_simple_vocab_16e6.txt.gz")
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed) // reused: a new writer allocates more than the load
	f.Fuzz(func(t *testing.T, text []byte) {
		buf.Reset()
		zw.Reset(&buf)
		zw.Write(text)
		zw.Close()
		if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		tok, err := LoadBPEGzip(path)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "tokenizer: ") {
				t.Fatalf("error without its component: %v", err)
			}
			return
		}
		checkTokenizer(t, tok)
		if tok.MaxLength() != DefaultMaxLength {
			t.Fatalf("max length %d, want %d", tok.MaxLength(), DefaultMaxLength)
		}
	})
}

// fuzzScratch returns a folder for the files a fuzz target rewrites on
// every execution: on tmpfs (/dev/shm) where the machine has one, since a
// disk write costs several times the parse under test, else f.TempDir().
func fuzzScratch(f *testing.F) string {
	if d, err := os.MkdirTemp("/dev/shm", "latentfarm-fuzz-"); err == nil {
		f.Cleanup(func() { os.RemoveAll(d) })
		return d
	}
	return f.TempDir()
}
