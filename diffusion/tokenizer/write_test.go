package tokenizer

import (
	"slices"
	"testing"
)

func TestWriteFolder_WordsBecomeSingleTokens(t *testing.T) {
	dir := t.TempDir()
	words := []string{"red", "circle", "on", "a", "blue", "background", "reddish"}
	if err := WriteFolder(dir, words); err != nil {
		t.Fatal(err)
	}
	tok, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	ids := tok.Encode("a red circle on a blue background")
	if len(ids) != 7 {
		t.Fatalf("Encode gave %d tokens %v, want one per word", len(ids), ids)
	}
	if got := tok.Encode("reddish"); len(got) != 1 {
		t.Errorf("reddish: %v, want one token", got)
	}
	// A word outside the list still encodes, byte by byte.
	if got := tok.Encode("zebra"); len(got) != 5 {
		t.Errorf("zebra: %v, want 5 byte tokens", got)
	}
	padded := tok.EncodePadded("red")
	if len(padded) != 77 || padded[0] != tok.BOS() || padded[2] != tok.EOS() || padded[76] != tok.Pad() {
		t.Errorf("EncodePadded = %v", padded)
	}
	if tok.VocabSize() != tok.EOS()+1 {
		t.Errorf("vocab size %d, eos %d: the end token must be last", tok.VocabSize(), tok.EOS())
	}
	if slices.Equal(tok.Encode("red"), tok.Encode("reddish")) {
		t.Errorf("red and reddish encode alike")
	}
}
