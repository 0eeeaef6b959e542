package client

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/latentfarm/latentfarm/shared/wire"
)

// ManifestSummary is a manifest without its lists: Manifest's Frames,
// Failed and Tasks are nil, and counted here instead.
type ManifestSummary struct {
	wire.Manifest
	FrameCount, FailedCount, TaskCount int
}

// EachManifestFrame reads a manifest in the coordinator's JSON view (as GET
// /v1/jobs/{id}/manifest serves it and Download saves it) from r, calling
// fn for each frame, one at a time, so that a million-frame manifest is
// never held whole. It returns the rest as a summary.
func EachManifestFrame(r io.Reader, fn func(wire.ManifestFrame) error) (ManifestSummary, error) {
	var out ManifestSummary
	dec := json.NewDecoder(r)
	if err := expectDelim(dec, '{'); err != nil {
		return out, err
	}
	rest := map[string]json.RawMessage{}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return out, fmt.Errorf("client: manifest: %w", err)
		}
		key, _ := tok.(string)
		// Keys match as encoding/json matches them, without case; one
		// given twice is refused rather than half applied.
		lower := strings.ToLower(key)
		if seen[lower] {
			return out, fmt.Errorf("client: manifest: key %q given twice", key)
		}
		seen[lower] = true
		key = lower
		switch key {
		case "frames":
			out.FrameCount, err = eachElement(dec, func(f wire.ManifestFrame) error { return fn(f) })
		case "failed":
			out.FailedCount, err = eachElement(dec, func(wire.FailedFrame) error { return nil })
		case "tasks":
			out.TaskCount, err = eachElement(dec, func(wire.ManifestTask) error { return nil })
		default:
			var v json.RawMessage
			err = dec.Decode(&v)
			rest[key] = v
		}
		if err != nil {
			return out, fmt.Errorf("client: manifest %q: %w", key, err)
		}
	}
	if err := expectDelim(dec, '}'); err != nil {
		return out, err
	}
	b, _ := json.Marshal(rest)
	if err := json.Unmarshal(b, &out.Manifest); err != nil {
		return out, fmt.Errorf("client: manifest: %w", err)
	}
	return out, nil
}

// eachElement decodes a JSON array from dec an element at a time.
func eachElement[T any](dec *json.Decoder, fn func(T) error) (int, error) {
	if err := expectDelim(dec, '['); err != nil {
		return 0, err
	}
	n := 0
	for dec.More() {
		var v T
		if err := dec.Decode(&v); err != nil {
			return n, err
		}
		if err := fn(v); err != nil {
			return n, err
		}
		n++
	}
	return n, expectDelim(dec, ']')
}

func expectDelim(dec *json.Decoder, d json.Delim) error {
	tok, err := dec.Token()
	if err != nil {
		return fmt.Errorf("client: manifest: %w", err)
	}
	if tok != d {
		return fmt.Errorf("client: manifest: %v where %v was expected", tok, d)
	}
	return nil
}

// ReadManifestFile reads a manifest file that Download saved, whole and
// sorted by frame index (for small jobs: a contact sheet, -o json).
func ReadManifestFile(path string) (wire.Manifest, error) {
	var m wire.Manifest
	data, err := os.ReadFile(path)
	if err != nil {
		return m, fmt.Errorf("client: %w", err)
	}
	if err := json.Unmarshal(data, &m); err != nil {
		return m, fmt.Errorf("client: manifest %s: %w", path, err)
	}
	m.Sort()
	return m, nil
}
