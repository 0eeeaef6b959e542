package wire

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
)

// ManifestLine is one line of a manifest shard; exactly one field is set.
type ManifestLine struct {
	Frame  *ManifestFrame `json:"frame,omitempty"`
	Failed *FailedFrame   `json:"failed,omitempty"`
	Task   *ManifestTask  `json:"task,omitempty"`
}

// OpenFunc opens an object of the farm's bucket.
type OpenFunc func(ctx context.Context, key string) (io.ReadCloser, error)

// maxManifestLine bounds one shard line: a frame with the longest prompts
// is a few KiB.
const maxManifestLine = 1 << 20

// ReadManifestSummary reads the object at ManifestKey(job).
func ReadManifestSummary(ctx context.Context, open OpenFunc, job string) (Manifest, error) {
	var m Manifest
	r, err := open(ctx, ManifestKey(job))
	if err != nil {
		return m, fmt.Errorf("wire: manifest of %s: %w", job, err)
	}
	defer r.Close()
	if err := json.NewDecoder(r).Decode(&m); err != nil {
		return m, fmt.Errorf("wire: manifest of %s: %w", job, err)
	}
	return m, nil
}

// EachManifestLine calls fn for every line of m's shards, in shard order,
// holding one line at a time. A task line's Renders is corrected from
// m.Rerendered. An error from fn stops the walk and is returned.
func EachManifestLine(ctx context.Context, open OpenFunc, m *Manifest, fn func(ManifestLine) error) error {
	for _, key := range m.Shards {
		if err := eachShardLine(ctx, open, key, func(l ManifestLine) error {
			if l.Task != nil {
				if n, ok := m.Rerendered[l.Task.ID]; ok {
					l.Task.Renders = n
				}
			}
			return fn(l)
		}); err != nil {
			return err
		}
	}
	return nil
}

func eachShardLine(ctx context.Context, open OpenFunc, key string, fn func(ManifestLine) error) error {
	r, err := open(ctx, key)
	if err != nil {
		return fmt.Errorf("wire: manifest shard %s: %w", key, err)
	}
	defer r.Close()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxManifestLine)
	for n := 1; sc.Scan(); n++ {
		var l ManifestLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			return fmt.Errorf("wire: manifest shard %s line %d: %w", key, n, err)
		}
		if err := fn(l); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("wire: manifest shard %s: %w", key, err)
	}
	return nil
}

// ReadManifest reads job's manifest whole, its frames sorted by index and
// its failed frames and tasks filled in from the shards: for jobs small
// enough to hold (a million frames take a few hundred MB; walk those with
// EachManifestLine).
func ReadManifest(ctx context.Context, open OpenFunc, job string) (Manifest, error) {
	m, err := ReadManifestSummary(ctx, open, job)
	if err != nil {
		return m, err
	}
	err = EachManifestLine(ctx, open, &m, func(l ManifestLine) error {
		switch {
		case l.Frame != nil:
			m.Frames = append(m.Frames, *l.Frame)
		case l.Failed != nil:
			m.Failed = append(m.Failed, *l.Failed)
		case l.Task != nil:
			m.Tasks = append(m.Tasks, *l.Task)
		}
		return nil
	})
	m.Sort()
	return m, err
}

// Sort orders a whole manifest's frames, failed frames and tasks by frame
// index (the shards, and the coordinator's JSON view of them, list them in
// the order their tasks ended).
func (m *Manifest) Sort() {
	sort.Slice(m.Frames, func(a, b int) bool { return m.Frames[a].Index < m.Frames[b].Index })
	sort.Slice(m.Failed, func(a, b int) bool { return m.Failed[a].Index < m.Failed[b].Index })
	sort.SliceStable(m.Tasks, func(a, b int) bool { return m.Tasks[a].Frames[0] < m.Tasks[b].Frames[0] })
}

// FrameSet is a set of a job's frame indices, a bit each: a million-frame
// job's frame keys would not fit a map.
type FrameSet struct{ bits []uint64 }

// AddFrame adds f's index when f is a frame of job at its own key
// (FrameKey), and reports whether it did.
func (s *FrameSet) AddFrame(job string, f ManifestFrame) bool {
	if f.Index < 0 || f.Index >= MaxFrames || f.Key != FrameKey(job, f.Index) {
		return false
	}
	for len(s.bits) <= f.Index/64 {
		s.bits = append(s.bits, 0)
	}
	s.bits[f.Index/64] |= 1 << (f.Index % 64)
	return true
}

// Has reports whether index i is in the set.
func (s *FrameSet) Has(i int) bool {
	return i >= 0 && i/64 < len(s.bits) && s.bits[i/64]&(1<<(i%64)) != 0
}

// Bound is one more than the largest index the set may hold.
func (s *FrameSet) Bound() int { return len(s.bits) * 64 }
