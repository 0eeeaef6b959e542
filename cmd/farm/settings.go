package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"sigs.k8s.io/yaml"
)

// precedence is the rule every command that connects follows, stated in
// its help.
const precedence = `Each setting comes from the first of: its flag; its environment variable
(named in the flag's help); farm node's join token (--join-token-file, or
$FARM_JOIN_TOKEN), which stands in for the credentials below; the --config file
(YAML or JSON); the credentials.json that farm up wrote in the data dir (--data,
$FARM_DATA, default ./farm-data); its default.`

// settings registers a command's flags together with the environment
// variables that stand for them, and remembers which fields the user set
// with either, so that the lower layers (a --config file, farm up's
// credentials) fill only the others. See precedence.
type settings struct {
	fs    *pflag.FlagSet
	binds []binding
	user  map[any]bool // addresses of the fields a flag or an environment variable set
}

// binding ties a flag to the field it writes and its environment variables.
type binding struct {
	flag  string
	env   []string
	field any
}

func newSettings(fs *pflag.FlagSet) *settings {
	return &settings{fs: fs, user: map[any]bool{}}
}

// bind records that the flag name, already defined, writes field and that
// the environment variables env stand for it; the help names them.
func (s *settings) bind(name string, field any, env ...string) {
	s.binds = append(s.binds, binding{flag: name, env: env, field: field})
	if len(env) > 0 {
		f := s.fs.Lookup(name)
		f.Usage += " ($" + strings.Join(env, ", $") + ")"
	}
}

func (s *settings) String(p *string, name, usage string, env ...string) {
	s.fs.StringVar(p, name, *p, usage)
	s.bind(name, p, env...)
}

func (s *settings) Strings(p *[]string, name, usage string, env ...string) {
	s.fs.StringSliceVar(p, name, *p, usage)
	s.bind(name, p, env...)
}

func (s *settings) Bool(p *bool, name, usage string, env ...string) {
	s.fs.BoolVar(p, name, *p, usage)
	s.bind(name, p, env...)
}

func (s *settings) Int(p *int, name, usage string, env ...string) {
	s.fs.IntVar(p, name, *p, usage)
	s.bind(name, p, env...)
}

func (s *settings) Duration(p *time.Duration, name, usage string, env ...string) {
	s.Var((*duration)(p), p, name, usage, env...)
}

// Var defines a flag of a typed value that writes field.
func (s *settings) Var(v pflag.Value, field any, name, usage string, env ...string) {
	s.fs.Var(v, name, usage)
	s.bind(name, field, env...)
}

// apply reads the environment variables of the fields no flag set and
// records every field the user set. Call it once, after parsing.
func (s *settings) apply() error {
	for _, b := range s.binds {
		if s.fs.Lookup(b.flag).Changed {
			s.user[b.field] = true
		}
	}
	for _, b := range s.binds {
		if s.user[b.field] {
			continue
		}
		for _, name := range b.env {
			v := os.Getenv(name)
			if v == "" {
				continue
			}
			if err := s.fs.Lookup(b.flag).Value.Set(v); err != nil {
				return usagef("$%s %q (it stands for --%s): %v", name, v, b.flag, err)
			}
			s.user[b.field] = true
			break
		}
	}
	return nil
}

// given reports whether a flag or an environment variable set field.
func (s *settings) given(field any) bool { return s.user[field] }

// fill copies each non-zero field of src into dst, pointers to the same
// struct type, except the fields the user gave. Lower layers come in through
// it, lowest first: a later one overrides an earlier one, the user both.
func (s *settings) fill(dst, src any) {
	fillValue(reflect.ValueOf(dst).Elem(), reflect.ValueOf(src).Elem(), s.user)
}

func fillValue(d, src reflect.Value, keep map[any]bool) {
	if d.Kind() == reflect.Struct {
		for i := range d.NumField() {
			if d.Type().Field(i).IsExported() {
				fillValue(d.Field(i), src.Field(i), keep)
			}
		}
		return
	}
	if src.IsZero() || keep[d.Addr().Interface()] {
		return
	}
	d.Set(src)
}

// readConfig decodes the YAML or JSON config file at path into v, a pointer
// to a struct, refusing unknown keys. Errors name the file and the key.
func readConfig(path string, v any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	js, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(js, &top); err != nil {
		return fmt.Errorf("config %s: want a mapping of settings: %w", path, err)
	}
	fields := map[string]reflect.Value{}
	jsonFields(reflect.ValueOf(v).Elem(), fields)
	keys := make([]string, 0, len(top))
	for k := range top {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		f, ok := fields[k]
		if !ok {
			// The words of encoding/json, which deploy's tests look for.
			return fmt.Errorf("config %s: json: unknown field %q", path, k)
		}
		dec := json.NewDecoder(bytes.NewReader(top[k]))
		dec.DisallowUnknownFields()
		if err := dec.Decode(f.Addr().Interface()); err != nil {
			return fmt.Errorf("config %s: %s: %w", path, k, err)
		}
	}
	return nil
}

// jsonFields maps the JSON keys of struct v to its fields, embedded
// structs inlined as encoding/json does.
func jsonFields(v reflect.Value, out map[string]reflect.Value) {
	t := v.Type()
	for i := range t.NumField() {
		sf := t.Field(i)
		if sf.Anonymous && sf.Type.Kind() == reflect.Struct {
			jsonFields(v.Field(i), out)
			continue
		}
		if !sf.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(sf.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = sf.Name
		}
		out[name] = v.Field(i)
	}
}
