package k8s

import (
	"strings"
	"testing"
)

func TestOverlays_BuildAndDecodeStrictly(t *testing.T) {
	for _, dir := range overlays {
		t.Run(dir, func(t *testing.T) {
			b := built(t, dir)
			if len(b.Objects) == 0 {
				t.Fatal("the build has no objects")
			}
			for _, p := range b.Problems {
				t.Error(p)
			}
		})
	}
}

func TestChecker_ReportsBrokenManifest(t *testing.T) {
	b := built(t, "testdata/broken")
	want := []struct{ what, substr string }{
		{"misspelt Deployment field", `Deployment /node-cpu8: unknown field "spec.replcias"`},
		{"unknown trigger field (KEDA Go types)", `ScaledObject /node-cpu8: unknown field "spec.triggers[0].consumer"`},
		{"unknown trigger field (KEDA CRD schema)", `ScaledObject /node-cpu8: KEDA CRD schema: unknown field "spec.triggers[0].consumer"`},
		{"value out of the CRD's range", `ScaledObject /node-cpu8: KEDA CRD schema: spec.pollingInterval: Invalid value: 0: spec.pollingInterval in body should be greater than or equal to 1`},
		{"misspelt scaler parameter", `metadata "lagTreshold" is not a trigger parameter of KEDA's nats-jetstream scaler`},
		{"missing scaler parameter", `KEDA's nats-jetstream scaler needs "consumer"`},
	}
	var got []string
	for _, p := range b.Problems {
		got = append(got, p.Error())
	}
	for _, w := range want {
		found := false
		for _, g := range got {
			found = found || strings.Contains(g, w.substr)
		}
		if !found {
			t.Errorf("%s: no problem contains %q; got:\n  %s", w.what, w.substr, strings.Join(got, "\n  "))
		}
	}
}
