"""A small CLIP byte-level BPE vocabulary built for the demo captions, and an
encoder that follows the same rules as the Go tokenizer (diffusion/tokenizer):
lowercase, CLIP's pre-tokenising split, byte symbols, "</w>" on the last symbol
of a word, lowest-ranked merge first, bos + ids + eos padded with eos to 77.

The vocabulary has CLIP's layout: 256 byte symbols, the same with "</w>", one
entry per merge in rank order, then <|startoftext|> and <|endoftext|>.
Only ASCII captions are handled here (the demo's captions are ASCII).
"""

import re

BOS, EOS = "<|startoftext|>", "<|endoftext|>"
MAX_LEN = 77

# CLIP's split for cleaned ASCII text (\p{L} -> a-z after lowercasing).
_SPLIT = re.compile(r"<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[a-z]+|[0-9]|[^\sa-z0-9]+")


def bytes_to_unicode():
    """CLIP's reversible byte -> printable character table."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    table, n = {}, 0
    for b in range(256):
        if b in printable:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + n)
            n += 1
    return table


def byte_symbols():
    """Byte symbols in CLIP vocabulary order: printable bytes, then the rest."""
    t = bytes_to_unicode()
    first = [t[b] for b in range(256) if t[b] == chr(b)]
    rest = [t[b] for b in range(256) if t[b] != chr(b)]
    return first + rest


class BPE:
    def __init__(self, merges):
        self.merges = list(merges)
        self.ranks = {m: i for i, m in enumerate(self.merges)}
        syms = byte_symbols()
        vocab = syms + [s + "</w>" for s in syms] + [a + b for a, b in self.merges] + [BOS, EOS]
        self.encoder = {}
        for i, tok in enumerate(vocab):
            if tok in self.encoder:
                raise ValueError(f"duplicate vocabulary entry {tok!r}")
            self.encoder[tok] = i
        self.table = bytes_to_unicode()

    def word_symbols(self, word):
        syms = list(word)
        syms[-1] += "</w>"
        while len(syms) > 1:
            pairs = [(self.ranks.get((syms[i], syms[i + 1])), i) for i in range(len(syms) - 1)]
            pairs = [p for p in pairs if p[0] is not None]
            if not pairs:
                break
            _, i = min(pairs)
            first, second = syms[i], syms[i + 1]
            out, j = [], 0
            while j < len(syms):
                if j + 1 < len(syms) and syms[j] == first and syms[j + 1] == second:
                    out.append(first + second)
                    j += 2
                else:
                    out.append(syms[j])
                    j += 1
            syms = out
        return syms

    def encode(self, text):
        ids = []
        for word in _SPLIT.findall(" ".join(text.lower().split())):
            if word in (BOS, EOS):
                ids.append(self.encoder[word])
                continue
            mapped = "".join(self.table[b] for b in word.encode("utf-8"))
            ids += [self.encoder[s] for s in self.word_symbols(mapped)]
        return ids

    def encode_padded(self, text):
        ids = self.encode(text)[: MAX_LEN - 2]
        out = [self.encoder[BOS]] + ids + [self.encoder[EOS]]
        return out + [self.encoder[EOS]] * (MAX_LEN - len(out))


def build(words):
    """Returns a BPE whose merges turn every word into one token. A new merge
    always gets the highest rank, so it can only fire once no earlier merge
    applies; words already single tokens are therefore never changed."""
    bpe = BPE([])
    for w in sorted(set(words)):
        while True:
            syms = bpe.word_symbols(w)
            if len(syms) == 1:
                break
            bpe = BPE(bpe.merges + [(syms[0], syms[1])])
    for w in words:
        if len(bpe.word_symbols(w)) != 1:
            raise AssertionError(f"bpe: {w!r} is not one token")
    return bpe


def write_files(bpe, folder):
    import json
    import os
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "vocab.json"), "w") as f:
        json.dump(bpe.encoder, f, ensure_ascii=False, separators=(",", ":"))
    with open(os.path.join(folder, "merges.txt"), "w") as f:
        f.write("#version: 0.2\n")
        for a, b in bpe.merges:
            f.write(f"{a} {b}\n")
    tok = lambda s: {"content": s, "lstrip": False, "normalized": True, "rstrip": False, "single_word": False}
    special = {"bos_token": tok(BOS), "eos_token": tok(EOS), "pad_token": EOS, "unk_token": tok(EOS)}
    with open(os.path.join(folder, "special_tokens_map.json"), "w") as f:
        json.dump(special, f, indent=2)
    cfg = {"add_prefix_space": False, "do_lower_case": True, "errors": "replace",
           "model_max_length": MAX_LEN, "tokenizer_class": "CLIPTokenizer", **special}
    with open(os.path.join(folder, "tokenizer_config.json"), "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)
