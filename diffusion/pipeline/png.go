package pipeline

// Image metadata. Every image carries its settings as the "parameters" text
// AUTOMATIC1111's stable-diffusion-webui writes (modules/processing.py
// create_infotext, v1.9 and later) and reads (modules/infotext_utils.py
// parse_generation_parameters), so the webui, civitai and other tools show
// our settings and farm render --from-png redoes theirs:
//
//	a lighthouse at dusk, "oil painting"
//	Negative prompt: blurry
//	Steps: 20, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7, Seed: 42, Size: 512x768, Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, Clip skip: 2, RNG: CPU, Version: latentfarm v0.4.0
//
// The text is Latin-1 in a tEXt chunk when it can be, else UTF-8 in an
// uncompressed iTXt chunk, as Pillow's PngInfo.add_text (which the webui
// uses) chooses.

import (
	"bufio"
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"image"
	"image/png"
	"io"
	"math"
	"regexp"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"github.com/latentfarm/latentfarm/diffusion/scheduler"
)

// samplerLabels are the webui's names of our samplers (sd_samplers_kdiffusion.py,
// sd_samplers_timesteps.py), written in the "Sampler:" field.
var samplerLabels = map[string]string{
	scheduler.NameEuler:   "Euler",
	scheduler.NameEulerA:  "Euler a",
	scheduler.NameDDIM:    "DDIM",
	scheduler.NameDPMPP2M: "DPM++ 2M",
}

// scheduleLabels are the webui's names of our schedules (sd_schedulers.py),
// written in the "Schedule type:" field. Our default, the sampler's own
// timesteps from the model's scheduler config, is the webui's "Automatic",
// its first entry: the sampler's default discretization. The two need not
// give the same sigmas (the webui's k-diffusion samplers space timesteps
// evenly from 999 to 0 and its DPM++ 2M defaults to Karras, diffusers
// follows the config's timestep_spacing); the label names the choice, not
// the numbers.
var scheduleLabels = map[string]string{
	scheduler.ScheduleDefault: "Automatic",
	scheduler.ScheduleKarras:  "Karras",
	scheduler.ScheduleAYS:     "Align Your Steps",
}

// scheduleNames reads a "Schedule type:" value: the webui's labels, its
// internal names (its schedulers_map has both), and the lowercase values
// versions before 1.9 wrote from the k_sched_type setting.
var scheduleNames = map[string]string{
	"Automatic": scheduler.ScheduleDefault, "automatic": scheduler.ScheduleDefault,
	"Karras": scheduler.ScheduleKarras, "karras": scheduler.ScheduleKarras,
	"Align Your Steps": scheduler.ScheduleAYS, "align_your_steps": scheduler.ScheduleAYS,
}

// versionPrefix starts the Version field of the texts we write. It is not a
// PEP 440 version, so the webui's infotext_versions.backcompat, which turns
// on old-version behaviour for versions before 1.6-1.8, leaves our texts be.
const versionPrefix = "latentfarm "

// Version is this build's version as the "Version:" field carries it:
// "latentfarm" and the main module's version, or "devel" and the VCS
// revision for an untagged build.
func Version() string { return buildVersion() }

var buildVersion = sync.OnceValue(func() string {
	v := "(devel)"
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return versionPrefix + v
	}
	if bi.Main.Version != "" {
		v = bi.Main.Version
	}
	if v == "(devel)" {
		var rev, dirty string
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value[:min(len(s.Value), 12)]
			case "vcs.modified":
				if s.Value == "true" {
					dirty = "-dirty"
				}
			}
		}
		if rev != "" {
			v = "devel-" + rev + dirty
		}
	}
	return versionPrefix + v
})

// Parameters renders the request as the webui's infotext: the prompt, a
// "Negative prompt:" line when there is one, then the settings in
// create_infotext's order. Clip skip is in the webui's numbering (our k is
// its k+1, and it omits 1), the denoising strength is written for img2img,
// inpainting and outpainting, "RNG: CPU" says the noise is torch's CPU
// generator's (the webui omits its default, the GPU), and Version names
// this build. Settings the webui has no field for (outpainting padding,
// animation in-betweens) are not written.
func Parameters(req Request, modelName, modelHash string) string {
	it := Infotext{Prompt: req.Prompt, NegativePrompt: req.NegativePrompt}
	add := func(k, v string) { it.Fields = append(it.Fields, Field{Key: k, Value: v}) }
	add("Steps", strconv.Itoa(req.Steps))
	add("Sampler", label(samplerLabels, req.Sampler))
	schedule := req.Schedule
	if schedule == "" {
		schedule = scheduler.ScheduleDefault
	}
	add("Schedule type", label(scheduleLabels, schedule))
	add("CFG scale", pyFloat(req.CFGScale))
	add("Seed", strconv.FormatUint(req.Seed, 10))
	add("Size", fmt.Sprintf("%dx%d", req.Width, req.Height))
	if modelHash != "" {
		add("Model hash", modelHash)
	}
	if modelName != "" {
		add("Model", modelName)
	}
	if s := imageStrength(req); s != 0 {
		add("Denoising strength", pyFloat(s))
	}
	if req.ClipSkip > 0 {
		add("Clip skip", strconv.Itoa(req.ClipSkip+1))
	}
	add("RNG", "CPU")
	add("Version", Version())
	return it.String()
}

func label(labels map[string]string, name string) string {
	if l, ok := labels[name]; ok {
		return l
	}
	return name
}

// pyFloat formats a float as the webui's texts show one: whole numbers
// without a fraction (the UI's sliders send them as JSON integers), others
// as Python's repr does.
func pyFloat(v float64) string {
	switch a := math.Abs(v); {
	case v == math.Trunc(v) && a < 1e16:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case a >= 1e-4 && a < 1e16:
		return strconv.FormatFloat(v, 'f', -1, 64)
	}
	return strconv.FormatFloat(v, 'e', -1, 64)
}

// imageStrength is the strength an image-mode request runs at (its
// default when unset), 0 for text-to-image.
func imageStrength(req Request) float64 {
	if req.Strength == 0 && req.InitImage != nil {
		return req.Defaults().Strength
	}
	return req.Strength
}

// Infotext is a parameters text split as the webui splits it: the prompt,
// the negative prompt and the settings line's fields.
type Infotext struct {
	Prompt, NegativePrompt string
	// Fields are in their order in the text, values unquoted. A key given
	// twice keeps its first place and its last value, as the webui's dict does.
	Fields []Field
}

// Field is one "Key: value" of the settings line.
type Field struct{ Key, Value string }

// Get returns the value of the field key.
func (it Infotext) Get(key string) (string, bool) {
	for _, f := range it.Fields {
		if f.Key == key {
			return f.Value, true
		}
	}
	return "", false
}

// String renders the text as create_infotext does: the prompt, the
// negative prompt's line when it is not empty, then the fields joined by
// ", " with their values quoted where needed, the whole stripped of
// surrounding whitespace.
func (it Infotext) String() string {
	var b strings.Builder
	b.WriteString(it.Prompt)
	if it.NegativePrompt != "" {
		line := "Negative prompt: " + it.NegativePrompt
		// Without fields (never in a text the webui writes), a one-line
		// negative prompt is the last line, and its "Negative prompt:" can
		// be the third field that makes it read as the settings line:
		// start it on the next line, which ParseInfotext reads the same.
		if len(it.Fields) == 0 && !strings.Contains(it.NegativePrompt, "\n") && len(reParam.FindAllString(line, -1)) >= 3 {
			line = "Negative prompt:\n" + it.NegativePrompt
		}
		b.WriteString("\n" + line)
	}
	b.WriteString("\n")
	for i, f := range it.Fields {
		if i > 0 {
			b.WriteString(", ")
		}
		if f.Key == f.Value {
			b.WriteString(f.Key)
			continue
		}
		b.WriteString(f.Key + ": " + quote(f.Value))
	}
	return pyStrip(b.String())
}

// quote is infotext_utils.quote: a value holding ',', ':' or a newline is
// written as a JSON string (json.dumps with ensure_ascii=False). So are the
// values the webui writes bare and then reads back changed: empty ones
// (dropped), those starting with '"' (unquoted) and those starting or
// ending with whitespace (trimmed). Its parser reads the quoted form back
// exactly.
func quote(v string) string {
	first, _ := utf8.DecodeRuneInString(v)
	last, _ := utf8.DecodeLastRuneInString(v)
	if v != "" && !strings.ContainsAny(v, ",:\n") && v[0] != '"' && !isPySpace(first) && !isPySpace(last) {
		return v
	}
	return pyJSONString(v)
}

// pyJSONString is Python's json.dumps(s, ensure_ascii=False): quotes,
// backslashes and control characters escaped, everything else as is
// (Go's encoding/json also escapes <, >, & and U+2028/9).
func pyJSONString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		case '\b':
			b.WriteString(`\b`)
		case '\f':
			b.WriteString(`\f`)
		default:
			if c < 0x20 {
				fmt.Fprintf(&b, `\u%04x`, c)
			} else {
				b.WriteByte(c)
			}
		}
	}
	b.WriteByte('"')
	return b.String()
}

// unquote is infotext_utils.unquote: a value in double quotes is decoded
// as a JSON string, and kept as it is when that fails.
func unquote(v string) string {
	if len(v) == 0 || v[0] != '"' || v[len(v)-1] != '"' {
		return v
	}
	var s string
	if err := json.Unmarshal([]byte(v), &s); err != nil {
		return v
	}
	return s
}

// Python's \s and \w on str are Unicode-aware; Go's are ASCII. These
// classes give the webui's regex its meaning.
const (
	pySpaceClass = `[\t\n\v\f\r \x1c-\x1f\x85\p{Z}]`
	pyWordClass  = `[\p{L}\p{N}_]`
)

// reParam is infotext_utils.re_param: "Key: value" or "Key: "quoted"",
// each ending at a comma or the end of the line.
var reParam = regexp.MustCompile(pySpaceClass + `*(` + pyWordClass + `(?:` + pyWordClass + `|[ \-/])+):` +
	pySpaceClass + `*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)`)

var reImageSize = regexp.MustCompile(`^([0-9]+)x([0-9]+)$`)

// isPySpace is Python's str.isspace.
func isPySpace(r rune) bool { return unicode.IsSpace(r) || r >= 0x1c && r <= 0x1f }

func pyStrip(s string) string { return strings.TrimFunc(s, isPySpace) }

// ParseInfotext splits a parameters text as parse_generation_parameters
// does. The last line is the settings line when the webui's field pattern
// finds three fields in it; otherwise it belongs to the prompt and Fields
// is empty. Lines are stripped; from the first line that starts with
// "Negative prompt:" on, lines are the negative prompt. A field with an
// empty value is dropped, as the webui drops it.
func ParseInfotext(text string) Infotext {
	var it Infotext
	lines := strings.Split(pyStrip(text), "\n")
	last := lines[len(lines)-1]
	lines = lines[:len(lines)-1]
	matches := reParam.FindAllStringSubmatch(last, -1)
	if len(matches) < 3 {
		lines, matches = append(lines, last), nil
	}
	negative := false
	for _, line := range lines {
		line = pyStrip(line)
		if rest, ok := strings.CutPrefix(line, "Negative prompt:"); ok {
			negative, line = true, pyStrip(rest)
		}
		dst := &it.Prompt
		if negative {
			dst = &it.NegativePrompt
		}
		if *dst != "" {
			*dst += "\n"
		}
		*dst += line
	}
	index := map[string]int{}
	for _, m := range matches {
		k, v := m[1], m[2]
		if v == "" {
			continue
		}
		v = unquote(v)
		if i, ok := index[k]; ok {
			it.Fields[i].Value = v
			continue
		}
		index[k] = len(it.Fields)
		it.Fields = append(it.Fields, Field{Key: k, Value: v})
	}
	return it
}

// ParameterError is a field of a parameters text the engine cannot use.
type ParameterError struct {
	Key, Value string
	Err        error
}

func (e *ParameterError) Error() string {
	return fmt.Sprintf("pipeline: parameters: %s %q: %v", e.Key, e.Value, e.Err)
}

func (e *ParameterError) Unwrap() error { return e.Err }

// ErrNoSettings is returned for a text without a settings line.
var ErrNoSettings = errors.New("pipeline: parameters: no settings line (Steps: ..., Sampler: ..., ...)")

// ParseParameters reads a parameters text, ours or the webui's, back into
// a request with the model name and hash. Fields the engine cannot use
// (another sampler, a malformed number) are *ParameterErrors, joined; the
// request holds every other field. Fields it does not know are ignored.
func ParseParameters(text string) (req Request, modelName, modelHash string, err error) {
	it := ParseInfotext(text)
	if len(it.Fields) == 0 {
		return Request{Prompt: it.Prompt, NegativePrompt: it.NegativePrompt}, "", "", ErrNoSettings
	}
	return it.Request()
}

// Request reads the fields into a request, as ParseParameters does.
//
// The webui's "Automatic" schedule is the sampler's default, and its
// DPM++ 2M defaults to Karras (sd_samplers_kdiffusion.py, v1.9 and later),
// so "Sampler: DPM++ 2M, Schedule type: Automatic" from the webui reads as
// Karras; from us it is our default. Older texts name the schedule in the
// sampler ("DPM++ 2M Karras"), which wins over a "Schedule type:" as in
// the webui's get_sampler_and_scheduler.
func (it Infotext) Request() (req Request, modelName, modelHash string, err error) {
	req.Prompt, req.NegativePrompt = it.Prompt, it.NegativePrompt
	req.Schedule = scheduler.ScheduleDefault
	var errs []error
	var suffixSchedule, scheduleType string
	for _, f := range it.Fields {
		var e error
		v := pyStrip(f.Value)
		switch f.Key {
		case "Steps":
			req.Steps, e = strconv.Atoi(v)
		case "Sampler":
			if v != "" { // "" (written quoted) is no sampler: the default
				req.Sampler, suffixSchedule, e = parseSampler(v)
			}
		case "Schedule type":
			scheduleType = v
			if _, ok := scheduleNames[v]; !ok {
				e = fmt.Errorf("farm has no such schedule (it has %s)", labelList(scheduleLabels, scheduler.Schedules()))
			}
		case "CFG scale":
			req.CFGScale, e = parseFloat(v)
		case "Seed":
			req.Seed, e = strconv.ParseUint(v, 10, 64)
		case "Size":
			req.Width, req.Height, e = parseSize(v)
		case "Denoising strength":
			req.Strength, e = parseFloat(v)
		case "Clip skip":
			var n int
			n, e = strconv.Atoi(v)
			req.ClipSkip = max(n-1, 0)
		case "Model hash":
			modelHash = f.Value
		case "Model":
			modelName = f.Value
		}
		if e != nil {
			errs = append(errs, &ParameterError{Key: f.Key, Value: f.Value, Err: e})
		}
	}
	switch s, ok := scheduleNames[scheduleType]; {
	case suffixSchedule != "":
		req.Schedule = suffixSchedule
	case s == scheduler.ScheduleDefault && req.Sampler == scheduler.NameDPMPP2M && !it.Ours():
		req.Schedule = scheduler.ScheduleKarras
	case ok:
		req.Schedule = s
	}
	return req, modelName, modelHash, errors.Join(errs...)
}

// Ours reports whether the text was written by latentfarm.
func (it Infotext) Ours() bool {
	v, _ := it.Get("Version")
	return strings.HasPrefix(v, versionPrefix)
}

// parseSampler reads a "Sampler:" value, which before webui 1.9 could end
// in a schedule ("DPM++ 2M Karras").
func parseSampler(v string) (sampler, schedule string, err error) {
	for name, l := range samplerLabels {
		if v == l {
			return name, "", nil
		}
	}
	for label, sched := range scheduleNames {
		base, ok := strings.CutSuffix(v, " "+label)
		if !ok {
			continue
		}
		for name, l := range samplerLabels {
			if base == l {
				return name, sched, nil
			}
		}
	}
	return "", "", fmt.Errorf("farm has no such sampler (it has %s)", labelList(samplerLabels, scheduler.Names()))
}

func labelList(labels map[string]string, names []string) string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = label(labels, n)
	}
	return strings.Join(out, ", ")
}

func parseFloat(v string) (float64, error) {
	f, err := strconv.ParseFloat(v, 64)
	if err == nil && (math.IsNaN(f) || math.IsInf(f, 0)) {
		return 0, errors.New("not a finite number")
	}
	return f, err
}

func parseSize(v string) (w, h int, err error) {
	m := reImageSize.FindStringSubmatch(v)
	if m == nil {
		return 0, 0, errors.New("want WIDTHxHEIGHT")
	}
	if w, err = strconv.Atoi(m[1]); err != nil {
		return 0, 0, err
	}
	h, err = strconv.Atoi(m[2])
	return w, h, err
}

// EncodePNG writes img as a PNG with a text chunk named "parameters".
func EncodePNG(w io.Writer, img image.Image, parameters string) error {
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return fmt.Errorf("pipeline: png: %w", err)
	}
	data := buf.Bytes()
	// The signature (8 bytes) and IHDR (25 bytes) come first; the text goes
	// right after IHDR so readers that stop early still see it.
	const afterIHDR = 8 + 25
	if len(data) < afterIHDR || string(data[12:16]) != "IHDR" {
		return errors.New("pipeline: png: unexpected encoder output")
	}
	chunk := textChunk("parameters", parameters)
	out := make([]byte, 0, len(data)+len(chunk))
	out = append(out, data[:afterIHDR]...)
	out = append(out, chunk...)
	out = append(out, data[afterIHDR:]...)
	_, err := w.Write(out)
	return err
}

// textChunk builds a tEXt chunk when text is Latin-1 (all tEXt can hold),
// else an uncompressed iTXt chunk with no language tag, as Pillow's
// PngInfo.add_text does.
func textChunk(keyword, text string) []byte {
	latin1 := true
	for _, r := range text {
		if r > 0xff {
			latin1 = false
			break
		}
	}
	typ := "tEXt"
	body := append([]byte(keyword), 0)
	if latin1 {
		for _, r := range text {
			body = append(body, byte(r))
		}
	} else {
		typ = "iTXt"
		// compression flag, method, language tag, translated keyword
		body = append(body, 0, 0, 0, 0)
		body = append(body, text...)
	}
	chunk := make([]byte, 8, 12+len(body))
	binary.BigEndian.PutUint32(chunk[0:4], uint32(len(body)))
	copy(chunk[4:8], typ)
	chunk = append(chunk, body...)
	return binary.BigEndian.AppendUint32(chunk, crc32.ChecksumIEEE(chunk[4:]))
}

// maxText bounds one text chunk, compressed or inflated: the webui's texts
// are a few kilobytes, and a PNG is untrusted input.
const maxText = 8 << 20

const pngSignature = "\x89PNG\r\n\x1a\n"

// ReadPNGText returns the text chunks of a PNG by keyword: tEXt and zTXt
// (Latin-1) and iTXt (UTF-8, compressed or not). A keyword given twice
// keeps its last text. It checks every chunk's CRC and reads to IEND; a
// text chunk that cannot be decoded (an unknown compression, a broken or
// oversized zlib stream) is skipped.
func ReadPNGText(r io.Reader) (map[string]string, error) {
	br := bufio.NewReader(r)
	var sig [8]byte
	if _, err := io.ReadFull(br, sig[:]); err != nil || string(sig[:]) != pngSignature {
		return nil, errors.New("pipeline: not a PNG file")
	}
	out := map[string]string{}
	var hdr [8]byte
	for offset := int64(len(sig)); ; {
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			return nil, fmt.Errorf("pipeline: png: truncated at offset %d, before IEND", offset)
		}
		n, typ := binary.BigEndian.Uint32(hdr[:4]), string(hdr[4:8])
		if !validChunkType(hdr[4:8]) {
			return nil, fmt.Errorf("pipeline: png: offset %d: %q is not a chunk type", offset, typ)
		}
		if n > math.MaxInt32 {
			return nil, fmt.Errorf("pipeline: png: %s chunk at offset %d: length %d is over 2^31-1", typ, offset, n)
		}
		sum := crc32.NewIEEE()
		sum.Write(hdr[4:8])
		var body []byte
		var err error
		if isTextChunk(typ) && n <= maxText {
			body = make([]byte, n)
			_, err = io.ReadFull(br, body)
			sum.Write(body)
		} else {
			_, err = io.CopyN(sum, br, int64(n))
		}
		var crc [4]byte
		if err == nil {
			_, err = io.ReadFull(br, crc[:])
		}
		if err != nil {
			return nil, fmt.Errorf("pipeline: png: %s chunk at offset %d: truncated", typ, offset)
		}
		if binary.BigEndian.Uint32(crc[:]) != sum.Sum32() {
			return nil, fmt.Errorf("pipeline: png: %s chunk at offset %d: CRC mismatch", typ, offset)
		}
		if body != nil {
			if k, v, ok := decodeText(typ, body); ok {
				out[k] = v
			}
		}
		if typ == "IEND" {
			return out, nil
		}
		offset += 12 + int64(n)
	}
}

func validChunkType(t []byte) bool {
	for _, c := range t {
		if (c < 'A' || c > 'Z') && (c < 'a' || c > 'z') {
			return false
		}
	}
	return true
}

func isTextChunk(typ string) bool { return typ == "tEXt" || typ == "zTXt" || typ == "iTXt" }

// decodeText reads the keyword and text of a tEXt, zTXt or iTXt body.
func decodeText(typ string, body []byte) (keyword, text string, ok bool) {
	k, rest, _ := bytes.Cut(body, []byte{0})
	keyword = latin1(k)
	switch typ {
	case "tEXt":
		return keyword, latin1(rest), true
	case "zTXt":
		if len(rest) < 1 || rest[0] != 0 {
			return "", "", false
		}
		t, ok := inflate(rest[1:])
		return keyword, latin1(t), ok
	case "iTXt":
		if len(rest) < 2 {
			return "", "", false
		}
		compressed, method := rest[0], rest[1]
		_, rest, ok1 := bytes.Cut(rest[2:], []byte{0}) // language tag
		_, t, ok2 := bytes.Cut(rest, []byte{0})        // translated keyword
		if !ok1 || !ok2 {
			return "", "", false
		}
		switch {
		case compressed == 0:
			return keyword, string(t), true
		case compressed == 1 && method == 0:
			t, ok := inflate(t)
			return keyword, string(t), ok
		}
	}
	return "", "", false
}

// inflate decompresses a zlib stream of at most maxText bytes.
func inflate(b []byte) ([]byte, bool) {
	zr, err := zlib.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, false
	}
	defer zr.Close()
	out, err := io.ReadAll(io.LimitReader(zr, maxText+1))
	if err != nil || len(out) > maxText {
		return nil, false
	}
	return out, true
}

// latin1 decodes ISO 8859-1, the encoding of tEXt and zTXt.
func latin1(b []byte) string {
	runes := make([]rune, len(b))
	for i, c := range b {
		runes[i] = rune(c)
	}
	return string(runes)
}
