package tokenizer

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// WriteFolder writes a small CLIP BPE tokenizer in the diffusers layout
// (vocab.json, merges.txt, special_tokens_map.json, tokenizer_config.json)
// to dir: the 512 byte symbols, then merges that make each of words a single
// token, then the start and end tokens; padding uses the end token. It is how
// the project makes tokenizers for its own models, with no download.
func WriteFolder(dir string, words []string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("tokenizer: %w", err)
	}
	byteRune := bytesToUnicode()
	symbols := byteSymbolOrder(byteRune)
	vocab := map[string]int{}
	add := func(tok string) {
		if _, ok := vocab[tok]; !ok {
			vocab[tok] = len(vocab)
		}
	}
	for _, s := range symbols {
		add(s)
	}
	for _, s := range symbols {
		add(s + "</w>")
	}
	var merges []string
	seen := map[string]bool{}
	for _, w := range words {
		parts := wordSymbols(strings.ToLower(w), byteRune)
		// Merge left to right: ((a b) c) ... so the whole word ends as one token.
		for len(parts) > 1 {
			pair := parts[0] + " " + parts[1]
			if !seen[pair] {
				seen[pair] = true
				merges = append(merges, pair)
				add(parts[0] + parts[1])
			}
			parts = append([]string{parts[0] + parts[1]}, parts[2:]...)
		}
	}
	add(DefaultBOS)
	add(DefaultEOS)

	vj, err := json.MarshalIndent(vocab, "", " ")
	if err != nil {
		return fmt.Errorf("tokenizer: %w", err)
	}
	special := map[string]any{"bos_token": DefaultBOS, "eos_token": DefaultEOS, "pad_token": DefaultEOS, "unk_token": DefaultEOS}
	sj, _ := json.MarshalIndent(special, "", " ")
	cfg := map[string]any{"model_max_length": DefaultMaxLength, "bos_token": DefaultBOS, "eos_token": DefaultEOS,
		"pad_token": DefaultEOS, "unk_token": DefaultEOS, "tokenizer_class": "CLIPTokenizer", "do_lower_case": true}
	cj, _ := json.MarshalIndent(cfg, "", " ")
	files := map[string][]byte{
		"vocab.json":              vj,
		"merges.txt":              []byte("#version: 0.2\n" + strings.Join(merges, "\n") + "\n"),
		"special_tokens_map.json": sj,
		"tokenizer_config.json":   cj,
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			return fmt.Errorf("tokenizer: %w", err)
		}
	}
	return nil
}

// wordSymbols splits a word into its byte symbols, the last one marked as
// the end of the word.
func wordSymbols(w string, byteRune [256]rune) []string {
	out := make([]string, 0, len(w))
	for i := 0; i < len(w); i++ {
		out = append(out, string(byteRune[w[i]]))
	}
	if len(out) > 0 {
		out[len(out)-1] += "</w>"
	}
	return out
}
