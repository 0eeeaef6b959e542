package backlog

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/latentfarm/latentfarm/shared/wire"
)

func mustPool(t *testing.T, name string, class wire.Class) Pool {
	t.Helper()
	p, err := newPool(name, "pools/"+name, class)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCounts_SmallestPoolClassCountsEachClass(t *testing.T) {
	tests := []struct {
		name      string
		pools     map[string]wire.Class
		want      map[wire.Class][]wire.Class
		uncounted []wire.Class
	}{
		{
			name:  "dev",
			pools: map[string]wire.Class{"cpu8": "cpu8"},
			want:  map[wire.Class][]wire.Class{"cpu8": {"vram4", "cpu4", "vram8", "cpu8"}},
			uncounted: []wire.Class{"cuda4", "cuda8", "vram16", "cuda16", "cpu16", "vram24", "cuda24", "cpu24",
				"vram48", "cuda48", "cpu48", "vram80", "cuda80", "cpu80"},
		},
		{
			name: "gpu",
			pools: map[string]wire.Class{"cuda16": "cuda16", "cuda24": "cuda24", "cuda24-spot": "cuda24",
				"cuda48": "cuda48", "cuda80": "cuda80"},
			want: map[wire.Class][]wire.Class{
				"cuda16": {"vram4", "cuda4", "vram8", "cuda8", "vram16", "cuda16"},
				"cuda24": {"vram24", "cuda24"},
				"cuda48": {"vram48", "cuda48"},
				"cuda80": {"vram80", "cuda80"},
			},
			uncounted: []wire.Class{"cpu4", "cpu8", "cpu16", "cpu24", "cpu48", "cpu80"},
		},
		{
			// Equal tiers: the GPU takes the either-backend work.
			name:  "cpu and cuda of one tier",
			pools: map[string]wire.Class{"cpu8": "cpu8", "cuda8": "cuda8", "cpu16": "cpu16"},
			want: map[wire.Class][]wire.Class{
				"cuda8": {"vram4", "cuda4", "vram8", "cuda8"},
				"cpu8":  {"cpu4", "cpu8"},
				"cpu16": {"vram16", "cpu16"},
			},
			uncounted: []wire.Class{"cuda16", "vram24", "cuda24", "cpu24", "vram48", "cuda48", "cpu48", "vram80", "cuda80", "cpu80"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var pools []Pool
			for name, c := range tt.pools {
				pools = append(pools, mustPool(t, name, c))
			}
			got := Counts(pools)
			if len(got) != len(tt.want) {
				t.Errorf("Counts: %v, want %v", got, tt.want)
			}
			for c, want := range tt.want {
				if !slices.Equal(got[c], want) {
					t.Errorf("pool class %s counts %v, want %v", c, got[c], want)
				}
			}
			if u := Uncounted(pools); !slices.Equal(u, tt.uncounted) {
				t.Errorf("Uncounted: %v, want %v", u, tt.uncounted)
			}
		})
	}
}

func TestNewPool_RejectsClassWithoutBackend(t *testing.T) {
	if _, err := newPool("any8", "pools/any8", "vram8"); err == nil || !strings.Contains(err.Error(), "names no backend") {
		t.Errorf("newPool(vram8): %v, want an error naming the missing backend", err)
	}
	if _, err := newPool("x", "pools/x", "cuda12"); err == nil {
		t.Error("newPool(cuda12): no error for a tier that does not exist")
	}
}

// writeTree writes files (slash paths) under a temporary root.
func writeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for name, data := range files {
		file := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(file, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func poolKustomization(name, class string) string {
	return "resources: [../../node]\nlabels:\n  - pairs:\n      latentfarm.io/class: " + class + "\n      latentfarm.io/pool: " + name + "\n"
}

func TestNewPlan_PoolSharedByOverlaysMustCountTheSameClasses(t *testing.T) {
	root := writeTree(t, map[string]string{
		"node/kustomization.yaml":         "resources: []\n",
		"pools/cuda24/kustomization.yaml": poolKustomization("cuda24", "cuda24"),
		"pools/cuda16/kustomization.yaml": poolKustomization("cuda16", "cuda16"),
		"group/kustomization.yaml":        "resources: [../pools/cuda24, ../pools/cuda16]\n",
		"overlays/a/kustomization.yaml":   "resources: [../../group]\n",
		"overlays/b/kustomization.yaml":   "resources: [../../pools/cuda24]\n",
	})
	plan, err := NewPlan(root, []Overlay{{Dir: "overlays/a"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := plan.Counts["cuda24"]; !slices.Equal(got, []wire.Class{"vram24", "cuda24"}) {
		t.Errorf("overlay a: cuda24 counts %v, want [vram24 cuda24]", got)
	}
	// Alone in b, cuda24 is the smallest pool and would count vram4 and up:
	// one shared patch cannot say both.
	_, err = NewPlan(root, []Overlay{{Dir: "overlays/a"}, {Dir: "overlays/b"}})
	if err == nil || !strings.Contains(err.Error(), "pool cuda24 counts") {
		t.Errorf("NewPlan(a, b): %v, want an error about pool cuda24", err)
	}
}

func TestPlan_FilesNameEveryTrigger(t *testing.T) {
	root := writeTree(t, map[string]string{
		"node/kustomization.yaml":       "resources: []\n",
		"pools/cpu8/kustomization.yaml": poolKustomization("cpu8", "cpu8"),
		"overlays/x/kustomization.yaml": "resources: [../../pools/cpu8]\n",
	})
	plan, err := NewPlan(root, []Overlay{{Dir: "overlays/x", Auth: "nats-monitoring"}})
	if err != nil {
		t.Fatal(err)
	}
	files := plan.Files()
	triggers := string(files["pools/cpu8/triggers.yaml"])
	for _, c := range []wire.Class{"vram4", "cpu4", "vram8", "cpu8"} {
		for _, p := range wire.Priorities {
			for _, want := range []string{"name: " + TriggerName(c, p) + "\n", "consumer: " + wire.TaskConsumer(c, p) + "\n"} {
				if strings.Count(triggers, want) != 1 {
					t.Errorf("triggers.yaml: %q %d times, want once", want, strings.Count(triggers, want))
				}
			}
		}
	}
	auth := string(files["overlays/x/monitoring-endpoint/cpu8.yaml"])
	if n := strings.Count(auth, "authenticationRef"); n != 12 {
		t.Errorf("monitoring-endpoint/cpu8.yaml: %d authenticationRefs, want 12", n)
	}
	if _, ok := files["overlays/x/monitoring-endpoint/kustomization.yaml"]; !ok {
		t.Error("no component kustomization for the overlay with Auth")
	}
}
