package tokenizer

import (
	"html"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"
)

// cleanText is simple_tokenizer's whitespace_clean(basic_clean(text)).lower():
// ftfy.fix_text (the subset in fixText), html.unescape twice, whitespace runs
// collapsed to one space, trimmed, then Python's str.lower.
func cleanText(text string) string {
	text = strings.ToValidUTF8(text, "\uFFFD")
	text = fixText(text)
	text = html.UnescapeString(html.UnescapeString(text))
	return pyLower(collapseSpace(text))
}

// fixText applies the parts of ftfy.fix_text (6.3.1 defaults) that change
// prompts in practice: HTML entities (only while no literal '<' has been seen,
// ftfy's unescape_html="auto"), terminal escapes, UTF-8 mojibake, C1
// controls, Latin ligatures, halfwidth/fullwidth forms, curly quotes and
// control characters. Like ftfy it works line by line and repeats until the
// text stops changing. Not done: NFC normalisation, ftfy's badness-scored
// whole-text re-decoding in other code pages, and line-break unification
// (every line break becomes a space later anyway).
func fixText(text string) string {
	unescape := true
	var out strings.Builder
	out.Grow(len(text))
	for len(text) > 0 {
		n := strings.IndexByte(text, '\n') + 1
		if n == 0 {
			n = len(text)
		}
		segment := text[:n]
		text = text[n:]
		if unescape && strings.Contains(segment, "<") {
			unescape = false
		}
		for range 8 {
			fixed := fixSegment(segment, unescape)
			if fixed == segment {
				break
			}
			segment = fixed
		}
		out.WriteString(segment)
	}
	return out.String()
}

var (
	entityPattern   = regexp.MustCompile(`&#?[0-9A-Za-z]{1,24};`)
	terminalEscapes = regexp.MustCompile(`\x1b\[(?:\d|;)*[a-zA-Z]`)
)

// fixSegment runs one round of the ftfy fixers, in ftfy's order.
func fixSegment(s string, unescape bool) string {
	if unescape && strings.IndexByte(s, '&') >= 0 {
		s = entityPattern.ReplaceAllStringFunc(s, html.UnescapeString)
	}
	if strings.IndexByte(s, 0x1b) >= 0 {
		s = terminalEscapes.ReplaceAllString(s, "")
	}
	if isASCII(s) {
		return removeControls(s)
	}
	s = fixMojibake(s)
	var out strings.Builder
	out.Grow(len(s))
	for _, r := range s {
		if r >= 0x80 && r <= 0x9F {
			r = cp1252[r-0x80] // fix_c1_controls
		}
		if lig, ok := ligatures[r]; ok {
			for _, l := range lig {
				writeNormalized(&out, l)
			}
			continue
		}
		writeNormalized(&out, r)
	}
	return out.String()
}

// writeNormalized writes r after fix_character_width, uncurl_quotes and
// remove_control_chars.
func writeNormalized(out *strings.Builder, r rune) {
	switch {
	case r >= 0xFF01 && r <= 0xFF5E:
		r -= 0xFEE0
	case r == 0x3000:
		r = ' '
	case r == 0xFFE3:
		out.WriteString(" \u0304")
		return
	default:
		if w, ok := halfFullWidth[r]; ok {
			r = w
		}
	}
	switch {
	case r == 0x02BC || (r >= 0x2018 && r <= 0x201B):
		r = '\''
	case r >= 0x201C && r <= 0x201F:
		r = '"'
	}
	if !isRemovedControl(r) {
		out.WriteRune(r)
	}
}

// removeControls is the ASCII-only fast path of fixSegment.
func removeControls(s string) string {
	if !strings.ContainsFunc(s, isRemovedControl) {
		return s
	}
	return strings.Map(func(r rune) rune {
		if isRemovedControl(r) {
			return -1
		}
		return r
	}, s)
}

// fixMojibake re-decodes UTF-8 that was decoded as Windows-1252/Latin-1
// ("cafÃ©" -> "café", "â€œ" -> "“"): a run of characters whose single-byte
// encodings form a valid UTF-8 sequence with a mojibake-typical lead byte is
// replaced by the character it encodes.
func fixMojibake(s string) string {
	runes := []rune(s)
	out := runes[:0:0]
	changed := false
	for i := 0; i < len(runes); {
		if r, n := mojibakeAt(runes[i:]); n > 0 {
			out = append(out, r)
			i += n
			changed = true
			continue
		}
		out = append(out, runes[i])
		i++
	}
	if !changed {
		return s
	}
	return string(out)
}

// mojibakeAt decodes the mojibake sequence at the start of runes, returning
// the character and how many runes it spans (0 when there is none).
func mojibakeAt(runes []rune) (rune, int) {
	lead, ok := sloppyByte(runes[0])
	if !ok || !mojibakeLeads[lead] {
		return 0, 0
	}
	n := 2
	switch {
	case lead >= 0xF0:
		n = 4
	case lead >= 0xE0:
		n = 3
	}
	if len(runes) < n {
		return 0, 0
	}
	var buf [4]byte
	buf[0] = lead
	for k := 1; k < n; k++ {
		b, ok := sloppyByte(runes[k])
		if !ok || b > 0xBF {
			return 0, 0
		}
		buf[k] = b
	}
	r, size := utf8.DecodeRune(buf[:n])
	if r == utf8.RuneError || size != n {
		return 0, 0
	}
	return r, n
}

// sloppyByte encodes r as one byte >= 0x80 in "sloppy" Windows-1252 (Latin-1
// for U+0080..U+00FF, Windows-1252 for its extra characters).
func sloppyByte(r rune) (byte, bool) {
	if r >= 0x80 && r <= 0xFF {
		return byte(r), true
	}
	b, ok := cp1252Byte[r]
	return b, ok
}

// isSpace is Python's str.isspace: Unicode White_Space plus U+001C..U+001F.
func isSpace(r rune) bool {
	return unicode.IsSpace(r) || (r >= 0x1C && r <= 0x1F)
}

// collapseSpace replaces each whitespace run with one space and trims.
func collapseSpace(s string) string {
	var out strings.Builder
	out.Grow(len(s))
	pending := false
	for _, r := range s {
		if isSpace(r) {
			pending = out.Len() > 0
			continue
		}
		if pending {
			out.WriteByte(' ')
			pending = false
		}
		out.WriteRune(r)
	}
	return out.String()
}

// pyLower is Python's str.lower: simple lowercase mapping plus the full
// mappings that differ (U+0130 -> "i̇") and the Final_Sigma rule.
func pyLower(s string) string {
	if isASCII(s) {
		return strings.ToLower(s)
	}
	runes := []rune(s)
	var out strings.Builder
	out.Grow(len(s))
	for i, r := range runes {
		switch r {
		case 0x130:
			out.WriteString("i\u0307")
		case 'Σ':
			if finalSigma(runes, i) {
				out.WriteRune('ς')
			} else {
				out.WriteRune('σ')
			}
		default:
			out.WriteRune(unicode.ToLower(r))
		}
	}
	return out.String()
}

// finalSigma reports whether the capital sigma at i ends a word: a cased
// letter before it and none after it, skipping case-ignorable characters.
func finalSigma(runes []rune, i int) bool {
	j := i - 1
	for j >= 0 && caseIgnorable(runes[j]) {
		j--
	}
	if j < 0 || !cased(runes[j]) {
		return false
	}
	j = i + 1
	for j < len(runes) && caseIgnorable(runes[j]) {
		j++
	}
	return j == len(runes) || !cased(runes[j])
}

// cased approximates Unicode's Cased property.
func cased(r rune) bool {
	return unicode.IsUpper(r) || unicode.IsLower(r) || unicode.IsTitle(r) ||
		unicode.Is(unicode.Other_Lowercase, r) || unicode.Is(unicode.Other_Uppercase, r)
}

// caseIgnorable approximates Unicode's Case_Ignorable property: marks,
// format characters, modifiers, and the word-internal punctuation of
// Word_Break MidLetter/MidNumLet/Single_Quote.
func caseIgnorable(r rune) bool {
	switch r {
	case '\'', '.', ':', 0xB7, 0x387, 0x55F, 0x5F4, 0x2018, 0x2019, 0x2024, 0x2027,
		0xFE13, 0xFE52, 0xFE55, 0xFF07, 0xFF0E, 0xFF1A:
		return true
	}
	return unicode.In(r, unicode.Mn, unicode.Me, unicode.Cf, unicode.Lm, unicode.Sk)
}

// isASCII reports whether s has only 7-bit bytes.
func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}
