package wire

import (
	"encoding/json"
	"fmt"

	"gopkg.in/yaml.v3"
)

// Seeds is either an explicit list or a range {start, count}. In JSON and
// YAML a list is written as an array and a range as an object.
type Seeds struct {
	// List, when set, is the seeds in order.
	List []int64
	// Start is the first seed of a range; nil when no seeds were given (the
	// coordinator then picks a start at submit and stores it).
	Start *int64
	// Count is the length of the range (defaults to images per prompt).
	Count int
}

// SeedRange returns a range of count seeds from start.
func SeedRange(start int64, count int) Seeds { return Seeds{Start: &start, Count: count} }

// IsZero reports whether no seeds were given.
func (s Seeds) IsZero() bool { return s.List == nil && s.Start == nil && s.Count == 0 }

// At returns the j-th seed.
func (s Seeds) At(j int) int64 {
	if s.List != nil {
		return s.List[j]
	}
	var start int64
	if s.Start != nil {
		start = *s.Start
	}
	return start + int64(j)
}

type seedRange struct {
	Start *int64 `json:"start,omitempty" yaml:"start,omitempty"`
	Count int    `json:"count,omitempty" yaml:"count,omitempty"`
}

// MarshalJSON writes a list as an array and a range as an object.
func (s Seeds) MarshalJSON() ([]byte, error) {
	if s.List != nil {
		return json.Marshal(s.List)
	}
	return json.Marshal(seedRange{Start: s.Start, Count: s.Count})
}

// UnmarshalJSON reads an array, an object {start, count} or a single number
// (a one-seed list).
func (s *Seeds) UnmarshalJSON(data []byte) error {
	*s = Seeds{}
	switch {
	case len(data) > 0 && data[0] == '[':
		return json.Unmarshal(data, &s.List)
	case len(data) > 0 && data[0] == '{':
		var r seedRange
		dec := json.NewDecoder(bytesReader(data))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&r); err != nil {
			return fmt.Errorf("seeds: %w", err)
		}
		s.Start, s.Count = r.Start, r.Count
		return nil
	case string(data) == "null":
		return nil
	default:
		var one int64
		if err := json.Unmarshal(data, &one); err != nil {
			return fmt.Errorf("seeds: want a list, {start, count} or a number: %w", err)
		}
		s.List = []int64{one}
		return nil
	}
}

// MarshalYAML writes a list as a sequence and a range as a mapping.
func (s Seeds) MarshalYAML() (any, error) {
	if s.List != nil {
		return s.List, nil
	}
	return seedRange{Start: s.Start, Count: s.Count}, nil
}

// UnmarshalYAML reads a sequence, a mapping {start, count} or a scalar.
func (s *Seeds) UnmarshalYAML(n *yaml.Node) error {
	*s = Seeds{}
	switch n.Kind {
	case yaml.SequenceNode:
		return n.Decode(&s.List)
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			if k := n.Content[i].Value; k != "start" && k != "count" {
				return fmt.Errorf("seeds: line %d: unknown field %q (want start, count)", n.Content[i].Line, k)
			}
		}
		var r seedRange
		if err := n.Decode(&r); err != nil {
			return err
		}
		s.Start, s.Count = r.Start, r.Count
		return nil
	default:
		var one int64
		if err := n.Decode(&one); err != nil {
			return fmt.Errorf("seeds: want a list, {start, count} or a number: %w", err)
		}
		s.List = []int64{one}
		return nil
	}
}
