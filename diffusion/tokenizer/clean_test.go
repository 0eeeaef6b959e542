package tokenizer

import "testing"

func TestCleanText(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
	}{
		{"whitespace", " \t a \n\r\n b\u00a0c\u3000 ", "a b c"},
		{"lowercase", "MiXeD", "mixed"},
		{"html_entities", "&amp;lt;b&gt; &quot;q&quot;", "<b> \"q\""},
		{"html_kept_with_tag_by_ftfy_then_clip", "<i>&amp;</i>", "<i>&</i>"},
		{"curly_quotes", "“hi” ‘x’ don’t ʼn", "\"hi\" 'x' don't 'n"},
		{"mojibake_latin1", "cafÃ©", "café"},
		{"mojibake_cp1252_quotes", "â€œquotedâ€\u009d", "\"quoted\""},
		{"mojibake_double", "cafÃƒÂ©", "café"},
		{"mojibake_emoji", "ðŸ˜€", "😀"},
		{"valid_latin_untouched", "café crème brûlée naïve résumé", "café crème brûlée naïve résumé"},
		{"german_quote_untouched", "„Gruß“ Ç”", "\"gruß\" ç\""},
		{"c1_control_to_cp1252", "a\u0085b\u0096c", "a…b–c"},
		{"fullwidth", "ＦＵＬＬ　ｔｅｘｔ　１２３！", "full text 123!"},
		{"halfwidth_katakana", "ｶﾀｶﾅ", "カタカナ"},
		{"ligatures", "ﬁne ﬂower ﬀ Ĳ", "fine flower ff ij"},
		{"control_chars_removed", "a\x00b\x1bc\ufeffd\u206ae", "abcde"},
		{"terminal_escapes", "\x1b[31mred\x1b[0m", "red"},
		{"zero_width_kept", "a\u200bb\u200dc", "a\u200bb\u200dc"},
		{"invalid_utf8", "a\xffb", "a\ufffdb"},
		{"final_sigma", "ΟΔΟΣ Σ ΣΑ", "οδος σ σα"},
		{"dotted_capital_i", "İ", "i\u0307"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := cleanText(tc.in); got != tc.want {
				t.Errorf("cleanText(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestBytesToUnicode(t *testing.T) {
	table := bytesToUnicode()
	seen := map[rune]bool{}
	for b, r := range table {
		if seen[r] {
			t.Fatalf("rune %U used twice", r)
		}
		seen[r] = true
		if b == ' ' && r != 'Ġ' {
			t.Errorf("space maps to %q, want Ġ", r)
		}
	}
	order := byteSymbolOrder(table)
	if len(order) != 256 || order[0] != "!" || order[93] != "~" || order[94] != "¡" || order[188] != "Ā" {
		t.Errorf("symbol order starts %q ... %q %q, [188]=%q", order[0], order[93], order[94], order[188])
	}
}
