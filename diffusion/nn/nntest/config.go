// Package nntest holds checks that the model blocks' tests share. It is
// imported by tests only.
package nntest

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/latentfarm/latentfarm/diffusion/nn"
)

// CheckConfig is what a model block's config.json reader must do with any
// bytes (a model folder is untrusted: it comes from the model store):
// refuse with an error that starts with prefix, or return a config that
// validates, survives a JSON round trip unchanged, and builds against no
// weights into nn.ErrMissingWeight in bounded work (no count in the file
// can make the build loop or allocate without limit). It returns the
// accepted config, for checks of the block's own.
func CheckConfig[C any](t *testing.T, data []byte, prefix string, parse func([]byte) (C, error), validate func(C) error, build func(C, nn.TensorMap) error) (C, bool) {
	t.Helper()
	cfg, err := parse(data)
	if err != nil {
		if !strings.HasPrefix(err.Error(), prefix) {
			t.Fatalf("error without its component: %v", err)
		}
		return cfg, false
	}
	if err := validate(cfg); err != nil {
		t.Fatalf("the reader accepted an invalid config: %v", err)
	}
	b, err := json.Marshal(cfg)
	if err != nil {
		t.Fatalf("accepted config does not encode: %v", err)
	}
	back, err := parse(b)
	if err != nil || !reflect.DeepEqual(back, cfg) {
		t.Fatalf("round trip:\n%+v\n%s\n%+v (%v)", cfg, b, back, err)
	}
	if err := build(cfg, nn.TensorMap{}); !errors.Is(err, nn.ErrMissingWeight) {
		t.Fatalf("build without weights: %v, want ErrMissingWeight", err)
	}
	return cfg, true
}
