package checkpoint

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/latentfarm/latentfarm/diffusion/unet"
	"github.com/latentfarm/latentfarm/diffusion/vae"
)

// FuzzLDMYAML feeds an original LDM inference config (v1-inference.yaml and
// its kin, passed as --config with a downloaded checkpoint) to yamlSpec.
// Everything it accepts is a set of valid part configs, the same ones the
// diffusers config.json readers give for the configs written back as JSON,
// so a yaml can never hand the loader a config that a model folder could
// not.
func FuzzLDMYAML(f *testing.F) {
	f.Add([]byte(v1YAML))
	f.Add([]byte(v2YAML))
	f.Add([]byte("model:\n  target: sgm.models.diffusion.DiffusionEngine\n"))
	f.Add([]byte("model: &a\n  target: ldm.models.diffusion.ddpm.LatentDiffusion\n  params: {unet_config: *a}\n"))
	path := filepath.Join(fuzzScratch(f), "v1-inference.yaml")
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		spec, err := yamlSpec(path)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "checkpoint: config "+path+": ") {
				t.Fatalf("error does not name the config: %v", err)
			}
			return
		}
		if err := spec.unet.Validate(); err != nil {
			t.Fatalf("accepted an invalid unet config: %v", err)
		}
		if err := spec.vae.Validate(); err != nil {
			t.Fatalf("accepted an invalid vae config: %v", err)
		}
		if err := spec.sched.Validate(); err != nil {
			t.Fatalf("accepted an invalid scheduler config: %v", err)
		}
		if err := spec.text.Validate(); err != nil {
			t.Fatalf("accepted an invalid text encoder config: %v", err)
		}
		if spec.unet.NormNumGroups != ldmGroups || spec.vae.NormNumGroups != ldmGroups {
			t.Fatalf("groups %d/%d, want LDM's %d", spec.unet.NormNumGroups, spec.vae.NormNumGroups, ldmGroups)
		}
		if !spec.textFromWeights || spec.wantLayout == layoutNone {
			t.Fatalf("text encoder class not taken from the yaml: %+v", spec)
		}
		// The configs, written as diffusers config.json files, read back
		// unchanged: a yaml and a model folder describe models one way.
		ub, _ := json.Marshal(spec.unet)
		if u, err := unet.ParseConfig(ub); err != nil || !reflect.DeepEqual(u, spec.unet) {
			t.Fatalf("unet config %s reads back as %+v (%v)", ub, u, err)
		}
		vb, _ := json.Marshal(spec.vae)
		if v, err := vae.ParseConfig(vb); err != nil || !reflect.DeepEqual(v, spec.vae) {
			t.Fatalf("vae config %s reads back as %+v (%v)", vb, v, err)
		}
	})
}

// fuzzScratch returns a folder for the files a fuzz target rewrites on
// every execution: on tmpfs (/dev/shm) where the machine has one, since a
// disk write costs several times the parse under test, else f.TempDir().
func fuzzScratch(f *testing.F) string {
	if d, err := os.MkdirTemp("/dev/shm", "latentfarm-fuzz-"); err == nil {
		f.Cleanup(func() { os.RemoveAll(d) })
		return d
	}
	return f.TempDir()
}
