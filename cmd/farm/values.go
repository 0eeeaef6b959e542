package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The typed values of flags, environment variables and config files: one
// type per kind of setting, used by all three, so "8GiB" or "30s" means the
// same wherever it is written. Their errors do not repeat the value or the
// name: pflag, settings.apply and readConfig add both.

// duration is a time.Duration of 0 or more: "30s", "2m", "1h30m". In a
// config file it is a string.
type duration time.Duration

const durationWant = "want a duration of 0 or more, such as 30s, 2m or 1h30m"

func (d *duration) Set(s string) error {
	v, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil || v < 0 {
		return errors.New(durationWant)
	}
	*d = duration(v)
	return nil
}

func (d *duration) String() string {
	if *d == 0 {
		return "" // no "(default 0s)" in the help: the package's default applies
	}
	return time.Duration(*d).String()
}

func (d *duration) Type() string { return "duration" }

func (d *duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("%s: %s, in quotes", b, durationWant)
	}
	if err := d.Set(s); err != nil {
		return fmt.Errorf("%q: %w", s, err)
	}
	return nil
}

// sizeUnits are the units a byte size may carry, compared without case.
var sizeUnits = map[string]int64{
	"b":   1,
	"kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40,
	"ki": 1 << 10, "mi": 1 << 20, "gi": 1 << 30, "ti": 1 << 40, // Kubernetes' spelling
	"kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12,
}

// errNotSize is parseSize's error for a number it cannot read.
var errNotSize = errors.New("not a size")

// sizeError words a parseSize error for a setting that wants what want says.
func sizeError(err error, want string) error {
	if errors.Is(err, errNotSize) {
		return errors.New(want)
	}
	return fmt.Errorf("%v: %s", err, want)
}

// parseSize reads a size of 0 or more: a number with a unit ("8GiB",
// "512 MiB", "1.5GB"), or a plain number in units of plain.
func parseSize(s string, plain int64) (int64, error) {
	s = strings.TrimSpace(s)
	num := strings.TrimRight(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
	unit, mult := strings.TrimSpace(s[len(num):]), plain
	if unit != "" {
		m, ok := sizeUnits[strings.ToLower(unit)]
		if !ok {
			return 0, fmt.Errorf("unknown unit %q", unit)
		}
		mult = m
	}
	x, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
	if err != nil || x < 0 || math.IsInf(x, 0) || x*float64(mult) > math.MaxInt64 {
		return 0, errNotSize
	}
	return int64(x * float64(mult)), nil
}

// formatSize writes n in the largest binary unit that holds it exactly.
func formatSize(n int64) string {
	for _, u := range []struct {
		name string
		size int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n != 0 && n%u.size == 0 {
			return strconv.FormatInt(n/u.size, 10) + u.name
		}
	}
	return strconv.FormatInt(n, 10)
}

// byteSize is a size in bytes: "8GiB", "512MiB", "1.5GB" or plain bytes
// (KiB, MiB, GiB, TiB and Ki, Mi, Gi, Ti are powers of 1024; kB, MB, GB,
// TB powers of 1000). In a config file it is a string, or a number of bytes.
type byteSize int64

const sizeWant = `want a size such as 8GiB, 512MiB or 1.5GB, or a number of bytes`

func (b *byteSize) Set(s string) error {
	n, err := parseSize(s, 1)
	if err != nil {
		return sizeError(err, sizeWant)
	}
	*b = byteSize(n)
	return nil
}

func (b *byteSize) String() string { return formatSize(int64(*b)) }
func (b *byteSize) Type() string   { return "size" }

func (b *byteSize) UnmarshalJSON(data []byte) error {
	return unmarshalSize(data, (*int64)(b), 1, sizeWant)
}

// gibSize is a byteSize whose plain numbers count GiB, for --vram-gib and
// vram_gib: "8" and "7.5" are GiB, "512MiB" is 512 MiB.
type gibSize int64

const gibWant = `want a number of GiB such as 8 or 7.5, or a size such as 512MiB`

func (g *gibSize) Set(s string) error {
	n, err := parseSize(s, 1<<30)
	if err != nil {
		return sizeError(err, gibWant)
	}
	*g = gibSize(n)
	return nil
}

func (g *gibSize) String() string { return formatSize(int64(*g)) }
func (g *gibSize) Type() string   { return "GiB" }

func (g *gibSize) UnmarshalJSON(data []byte) error {
	return unmarshalSize(data, (*int64)(g), 1<<30, gibWant)
}

// unmarshalSize reads a JSON number (in units of plain) or string into dst.
func unmarshalSize(data []byte, dst *int64, plain int64, want string) error {
	var s string
	if err := json.Unmarshal(data, &s); err != nil {
		s = string(data) // a number
	}
	n, err := parseSize(s, plain)
	if err != nil {
		return fmt.Errorf("%s: %w", data, sizeError(err, want))
	}
	*dst = n
	return nil
}

// price is an amount of money of 0 or more, in the currency its setting
// names (--currency, currency). In a config file it is a number.
type price float64

const priceWant = "want an amount of 0 or more, such as 1.10"

func (p *price) Set(s string) error {
	x, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || x < 0 || math.IsInf(x, 0) || math.IsNaN(x) {
		return errors.New(priceWant)
	}
	*p = price(x)
	return nil
}

func (p *price) String() string {
	if *p == 0 {
		return ""
	}
	return strconv.FormatFloat(float64(*p), 'f', -1, 64)
}

func (p *price) Type() string { return "price" }

func (p *price) UnmarshalJSON(data []byte) error {
	var x float64
	if err := json.Unmarshal(data, &x); err != nil || x < 0 {
		return fmt.Errorf("%s: %s", data, priceWant)
	}
	*p = price(x)
	return nil
}

// outputFormat is -o: how a command prints its records.
type outputFormat string

const (
	outputTable outputFormat = "table"
	outputJSON  outputFormat = "json"
	outputYAML  outputFormat = "yaml"
)

var outputFormats = []string{string(outputTable), string(outputJSON), string(outputYAML)}

func (o *outputFormat) Set(s string) error {
	for _, f := range outputFormats {
		if strings.EqualFold(s, f) {
			*o = outputFormat(f)
			return nil
		}
	}
	return fmt.Errorf("want %s", alternatives(outputFormats))
}

func (o *outputFormat) String() string { return string(*o) }
func (o *outputFormat) Type() string   { return "format" }

// labels are a node's labels: k=v,k=v.
type labels map[string]string

func (l *labels) Set(s string) error {
	out := labels{}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok || k == "" {
			return errors.New("want k=v,k=v")
		}
		out[k] = v
	}
	*l = out
	return nil
}

func (l *labels) String() string {
	keys := make([]string, 0, len(*l))
	for k := range *l {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for i, k := range keys {
		keys[i] = k + "=" + (*l)[k]
	}
	return strings.Join(keys, ",")
}

func (l *labels) Type() string { return "k=v,..." }
