package tokenizer

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"
	"unicode/utf8"
)

// Load reads a diffusers/HF tokenizer folder: vocab.json and merges.txt
// (required), special_tokens_map.json and tokenizer_config.json (optional) for
// the bos/eos/pad/unk tokens and model_max_length. Values in
// special_tokens_map.json win over tokenizer_config.json, as in transformers.
func Load(dir string) (*Tokenizer, error) {
	vocabPath := filepath.Join(dir, "vocab.json")
	raw, err := os.ReadFile(vocabPath)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	encoder := map[string]int{}
	if err := json.Unmarshal(raw, &encoder); err != nil {
		return nil, fmt.Errorf("tokenizer: %s: invalid JSON: %w", vocabPath, err)
	}
	if err := checkDense(vocabPath, encoder); err != nil {
		return nil, err
	}

	mergesPath := filepath.Join(dir, "merges.txt")
	raw, err = os.ReadFile(mergesPath)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	lines := strings.Split(strings.TrimRight(string(raw), " \t\r\n"), "\n")
	firstLine := 1
	if strings.HasPrefix(lines[0], "#") {
		lines, firstLine = lines[1:], 2 // "#version: 0.2" header; HF drops line 0
	}
	ranks, err := parseMerges(mergesPath, lines, firstLine)
	if err != nil {
		return nil, err
	}

	cfg, err := readSpecialConfig(dir)
	if err != nil {
		return nil, err
	}
	return build(encoder, ranks, cfg)
}

// LoadBPEGzip builds the full CLIP tokenizer from openai/CLIP's
// bpe_simple_vocab_16e6.txt.gz: byte symbols, byte symbols + "</w>", the first
// 48894 merges joined, then <|startoftext|> and <|endoftext|> (49408 ids). It
// pads with <|endoftext|> to 77, the SD1.x convention.
func LoadBPEGzip(path string) (*Tokenizer, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %s: not gzip: %w", path, err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %s: %w", path, err)
	}
	if !utf8.Valid(raw) {
		return nil, fmt.Errorf("tokenizer: %s: merges are not valid UTF-8", path)
	}
	lines := strings.Split(string(raw), "\n")
	if len(lines) < 2 {
		return nil, fmt.Errorf("tokenizer: %s: no merges after the header line", path)
	}
	// simple_tokenizer drops line 0 (the "#version" header) unconditionally.
	ranks, err := parseMerges(path, lines[1:], 2)
	if err != nil {
		return nil, err
	}
	byteRune := bytesToUnicode()
	symbols := byteSymbolOrder(byteRune)
	vocab := make([]string, 0, 2*len(symbols)+len(ranks.order)+2)
	vocab = append(vocab, symbols...)
	for _, s := range symbols {
		vocab = append(vocab, s+"</w>")
	}
	for _, m := range ranks.order {
		vocab = append(vocab, m[0]+m[1])
	}
	vocab = append(vocab, DefaultBOS, DefaultEOS)
	encoder := make(map[string]int, len(vocab))
	for id, tok := range vocab {
		encoder[tok] = id // later duplicates win, as dict(zip(vocab, range)) does
	}
	// Two merges that join into one token leave a hole in the ids, and an
	// id past VocabSize would get by the check against the text encoder's
	// table: refuse them, as Load refuses such a vocab.json.
	if err := checkDense(path, encoder); err != nil {
		return nil, err
	}
	return build(encoder, ranks, specialConfig{source: path})
}

// mergeTable holds merges in rank order and the pair -> rank lookup.
type mergeTable struct {
	order [][2]string
	rank  map[string]int
}

// parseMerges parses "left right" lines (after the header) into ranks. Blank
// lines are skipped; at most maxMerges merges are kept, as CLIP slices them.
// firstLine is the 1-based line number of lines[0] in the file.
func parseMerges(path string, lines []string, firstLine int) (mergeTable, error) {
	t := mergeTable{rank: make(map[string]int, min(len(lines), maxMerges))}
	for i, line := range lines {
		if len(t.order) == maxMerges {
			break
		}
		line = strings.TrimRight(line, "\r")
		if strings.TrimSpace(line) == "" {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) != 2 {
			return mergeTable{}, fmt.Errorf("tokenizer: %s line %d: malformed merge %q: want 2 space-separated symbols, got %d",
				path, firstLine+i, clip(line), len(fields))
		}
		t.rank[fields[0]+" "+fields[1]] = len(t.order)
		t.order = append(t.order, [2]string{fields[0], fields[1]})
	}
	if len(t.order) == 0 {
		return mergeTable{}, fmt.Errorf("tokenizer: %s: no merges", path)
	}
	return t, nil
}

// checkDense requires vocab ids to be exactly 0..len-1, each used once, so the
// ids index a text-encoder embedding table of VocabSize rows.
func checkDense(path string, encoder map[string]int) error {
	if len(encoder) == 0 {
		return fmt.Errorf("tokenizer: %s: empty vocabulary", path)
	}
	seen := make([]string, len(encoder))
	used := make([]bool, len(encoder))
	for tok, id := range encoder {
		if id < 0 || id >= len(encoder) {
			return fmt.Errorf("tokenizer: %s: token %q has id %d outside 0..%d", path, clip(tok), id, len(encoder)-1)
		}
		if used[id] {
			return fmt.Errorf("tokenizer: %s: id %d used by both %q and %q", path, id, clip(seen[id]), clip(tok))
		}
		used[id], seen[id] = true, tok
	}
	return nil
}

// specialConfig is what the optional JSON files say about special tokens.
type specialConfig struct {
	bos, eos, pad, unk string
	maxLen             int
	source             string // where the tokens came from, for errors
}

// readSpecialConfig reads tokenizer_config.json then special_tokens_map.json
// (both optional) from dir.
func readSpecialConfig(dir string) (specialConfig, error) {
	cfg := specialConfig{source: dir}
	for _, name := range []string{"tokenizer_config.json", "special_tokens_map.json"} {
		path := filepath.Join(dir, name)
		raw, err := os.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return cfg, fmt.Errorf("tokenizer: %w", err)
		}
		var fields map[string]json.RawMessage
		if err := json.Unmarshal(raw, &fields); err != nil {
			return cfg, fmt.Errorf("tokenizer: %s: invalid JSON: %w", path, err)
		}
		for key, dst := range map[string]*string{"bos_token": &cfg.bos, "eos_token": &cfg.eos, "pad_token": &cfg.pad, "unk_token": &cfg.unk} {
			val, ok := fields[key]
			if !ok {
				continue
			}
			tok, err := tokenContent(val)
			if err != nil {
				return cfg, fmt.Errorf("tokenizer: %s: %s: %w", path, key, err)
			}
			if tok != "" {
				*dst = tok
			}
		}
		if val, ok := fields["model_max_length"]; ok && name == "tokenizer_config.json" {
			n, err := maxLength(val)
			if err != nil {
				return cfg, fmt.Errorf("tokenizer: %s: model_max_length: %w", path, err)
			}
			cfg.maxLen = n
		}
	}
	return cfg, nil
}

// tokenContent accepts a special token written as a string, as an AddedToken
// object {"content": ...}, or null (no token).
func tokenContent(raw json.RawMessage) (string, error) {
	raw = bytes.TrimSpace(raw)
	if string(raw) == "null" {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s, nil
	}
	var obj struct {
		Content *string `json:"content"`
	}
	if err := json.Unmarshal(raw, &obj); err != nil || obj.Content == nil {
		return "", fmt.Errorf("want a string or an object with \"content\", got %s", clip(string(raw)))
	}
	return *obj.Content, nil
}

// maxLength validates model_max_length: an integer long enough for bos+eos
// and small enough to be a real position-embedding count.
func maxLength(raw json.RawMessage) (int, error) {
	var f float64
	if err := json.Unmarshal(raw, &f); err != nil {
		return 0, fmt.Errorf("want a number, got %s", clip(string(raw)))
	}
	if f != math.Trunc(f) || f < 3 || f > 1<<16 {
		return 0, fmt.Errorf("%v is not an integer in 3..65536", f)
	}
	return int(f), nil
}

// build resolves the special tokens against the vocabulary and assembles the
// Tokenizer. Missing tokens default to CLIP's; pad defaults to eos.
func build(encoder map[string]int, merges mergeTable, cfg specialConfig) (*Tokenizer, error) {
	if cfg.bos == "" {
		cfg.bos = DefaultBOS
	}
	if cfg.eos == "" {
		cfg.eos = DefaultEOS
	}
	if cfg.unk == "" {
		cfg.unk = DefaultEOS
	}
	if cfg.pad == "" {
		cfg.pad = cfg.eos
	}
	if cfg.maxLen == 0 {
		cfg.maxLen = DefaultMaxLength
	}
	t := &Tokenizer{
		encoder:  encoder,
		ranks:    merges.rank,
		byteRune: bytesToUnicode(),
		maxLen:   cfg.maxLen,
		cache:    map[string][]int{},
	}
	for _, s := range []struct {
		role, tok string
		dst       *int
	}{{"bos", cfg.bos, &t.bos}, {"eos", cfg.eos, &t.eos}, {"pad", cfg.pad, &t.pad}, {"unk", cfg.unk, &t.unk}} {
		id, ok := encoder[s.tok]
		if !ok {
			return nil, fmt.Errorf("tokenizer: %s: %s token %q is not in the vocabulary", cfg.source, s.role, clip(s.tok))
		}
		*s.dst = id
	}
	return t, nil
}

// clip shortens s for error messages.
func clip(s string) string {
	const limit = 64
	if len(s) <= limit {
		return s
	}
	cut := limit
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}
