// Package tokenizer turns prompts into CLIP BPE token ids the way Stable
// Diffusion's text encoders expect them: openai/CLIP's simple_tokenizer text
// cleanup, pre-tokenising regex, byte-level symbols and ranked BPE merges, and
// HF CLIPTokenizer's [bos] + ids + [eos] + padding to model_max_length.
//
// It must never depend on the farm, touch the network, or panic on user text:
// every prompt, however malformed, yields ids (unknown symbols map to the unk
// token), and every bad vocabulary file yields an error naming the file.
package tokenizer

import (
	"regexp"
	"strings"
	"sync"
)

// Default special tokens and length, as in openai/CLIP and SD1.x/SD2.x
// tokenizer_config.json.
const (
	DefaultBOS       = "<|startoftext|>"
	DefaultEOS       = "<|endoftext|>"
	DefaultMaxLength = 77
)

// maxMerges is the number of merges CLIP keeps: 49152 - 256 - 2 (simple_tokenizer
// and HF CLIPTokenizer both slice the merges file to this).
const maxMerges = 49152 - 256 - 2

// maxCacheEntries bounds the per-word BPE cache so a long-running node that
// sees many distinct prompts does not grow without limit.
const maxCacheEntries = 1 << 16

// splitPattern is CLIP's pre-tokenisation regex. It runs on cleaned,
// lowercased text whose only whitespace is ' ', so Go's ASCII \s suffices.
var splitPattern = regexp.MustCompile(`<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+`)

// Tokenizer is a CLIP byte-level BPE tokenizer. It is safe for concurrent use.
type Tokenizer struct {
	encoder  map[string]int
	ranks    map[string]int // "left right" -> merge rank (lower merges first)
	byteRune [256]rune
	bos      int
	eos      int
	pad      int
	unk      int
	maxLen   int

	mu    sync.Mutex
	cache map[string][]int
}

// BOS returns the id prepended by EncodePadded (<|startoftext|>).
func (t *Tokenizer) BOS() int { return t.bos }

// EOS returns the id appended by EncodePadded (<|endoftext|>).
func (t *Tokenizer) EOS() int { return t.eos }

// Pad returns the id EncodePadded fills with (eos for SD1.x, "!" = 0 for SD2.x).
func (t *Tokenizer) Pad() int { return t.pad }

// MaxLength returns the padded sequence length (model_max_length, 77 for SD).
func (t *Tokenizer) MaxLength() int { return t.maxLen }

// VocabSize returns the number of entries in the vocabulary.
func (t *Tokenizer) VocabSize() int { return len(t.encoder) }

// Encode tokenizes text without special tokens, as simple_tokenizer.encode does.
// Literal "<|startoftext|>"/"<|endoftext|>" in the text become their ids.
func (t *Tokenizer) Encode(text string) []int {
	cleaned := cleanText(text)
	ids := []int{}
	var buf strings.Builder
	for _, word := range splitPattern.FindAllString(cleaned, -1) {
		buf.Reset()
		for i := 0; i < len(word); i++ {
			buf.WriteRune(t.byteRune[word[i]])
		}
		ids = append(ids, t.wordIDs(buf.String())...)
	}
	return ids
}

// EncodePadded returns exactly MaxLength ids: bos, the Encode ids truncated to
// MaxLength-2, eos, then Pad ids (HF CLIPTokenizer with padding="max_length",
// truncation=True, as StableDiffusionPipeline calls it).
func (t *Tokenizer) EncodePadded(text string) []int {
	ids := t.Encode(text)
	if keep := t.maxLen - 2; len(ids) > keep {
		ids = ids[:keep]
	}
	out := make([]int, 0, t.maxLen)
	out = append(out, t.bos)
	out = append(out, ids...)
	out = append(out, t.eos)
	for len(out) < t.maxLen {
		out = append(out, t.pad)
	}
	return out
}

// wordIDs returns the ids of one pre-token already mapped to byte runes,
// consulting and filling the cache.
func (t *Tokenizer) wordIDs(word string) []int {
	t.mu.Lock()
	ids, ok := t.cache[word]
	t.mu.Unlock()
	if ok {
		return ids
	}
	var symbols []string
	if word == DefaultBOS || word == DefaultEOS {
		// simple_tokenizer seeds its cache with the two special tokens so
		// they are looked up whole, without "</w>".
		symbols = []string{word}
	} else {
		symbols = t.bpe(word)
	}
	ids = make([]int, len(symbols))
	for i, s := range symbols {
		id, ok := t.encoder[s]
		if !ok {
			id = t.unk
		}
		ids[i] = id
	}
	t.mu.Lock()
	if len(t.cache) >= maxCacheEntries {
		clear(t.cache)
	}
	t.cache[word] = ids
	t.mu.Unlock()
	return ids
}

// bpe splits word into runes, marks the last with "</w>", then repeatedly
// merges every occurrence of the lowest-ranked adjacent pair until no ranked
// pair is left.
func (t *Tokenizer) bpe(word string) []string {
	runes := []rune(word)
	if len(runes) == 0 {
		return nil
	}
	symbols := make([]string, len(runes))
	for i, r := range runes {
		symbols[i] = string(r)
	}
	symbols[len(symbols)-1] += "</w>"
	next := make([]string, 0, len(symbols))
	for len(symbols) > 1 {
		best, bestRank := -1, 0
		for i := 0; i+1 < len(symbols); i++ {
			rank, ok := t.ranks[symbols[i]+" "+symbols[i+1]]
			if ok && (best < 0 || rank < bestRank) {
				best, bestRank = i, rank
			}
		}
		if best < 0 {
			break
		}
		first, second := symbols[best], symbols[best+1]
		next = next[:0]
		for i := 0; i < len(symbols); {
			if i+1 < len(symbols) && symbols[i] == first && symbols[i+1] == second {
				next = append(next, first+second)
				i += 2
				continue
			}
			next = append(next, symbols[i])
			i++
		}
		symbols, next = next, symbols
	}
	return symbols
}

// bytesToUnicode is CLIP's reversible byte -> printable rune table: printable
// Latin-1 bytes map to themselves, the rest to 256, 257, ... in byte order.
func bytesToUnicode() [256]rune {
	var table [256]rune
	n := 0
	for b := 0; b < 256; b++ {
		if (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF) {
			table[b] = rune(b)
			continue
		}
		table[b] = rune(256 + n)
		n++
	}
	return table
}

// byteSymbolOrder lists the byte symbols in CLIP's vocabulary order: the
// printable ranges first, then the remapped bytes.
func byteSymbolOrder(table [256]rune) []string {
	out := make([]string, 0, 256)
	for _, printable := range []bool{true, false} {
		for b := 0; b < 256; b++ {
			if (table[b] == rune(b)) == printable {
				out = append(out, string(table[b]))
			}
		}
	}
	return out
}
