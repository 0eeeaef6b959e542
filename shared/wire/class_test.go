package wire

import (
	"reflect"
	"testing"
)

func TestEstimateVRAM_Plausible(t *testing.T) {
	gib := func(f string, p string, w, h int) float64 {
		return float64(EstimateVRAM(f, p, w, h, 1)) / (1 << 30)
	}
	// SD1.5 512x512 fp16 peaks around 3-4 GiB with naive attention.
	if g := gib(FamilySD1, PrecisionFP16, 512, 512); g < 2.5 || g > 4.5 {
		t.Errorf("sd1 512 fp16 = %.2f GiB", g)
	}
	// SDXL 1024x1024 fp16 needs 8-12 GiB.
	if g := gib(FamilySDXL, PrecisionFP16, 1024, 1024); g < 8 || g > 13 {
		t.Errorf("sdxl 1024 fp16 = %.2f GiB", g)
	}
	if gib(FamilySD1, PrecisionFP32, 512, 512) <= gib(FamilySD1, PrecisionFP16, 512, 512) {
		t.Error("fp32 not larger than fp16")
	}
	if EstimateVRAM(FamilySD1, PrecisionFP16, 512, 512, 2) <= EstimateVRAM(FamilySD1, PrecisionFP16, 512, 512, 1) {
		t.Error("batch 2 not larger than batch 1")
	}
	if EstimateVRAM("nope", PrecisionFP16, 512, 512, 1) != -1 {
		t.Error("unknown family not -1")
	}
}

func TestClassFor(t *testing.T) {
	tests := []struct {
		backend string
		bytes   int64
		want    Class
		ok      bool
	}{
		{BackendAny, 1 << 20, "vram4", true},
		{BackendAny, Tiers[0].TaskMaxBytes(), "vram4", true},
		{BackendAny, Tiers[0].TaskMaxBytes() + 1, "vram8", true},
		{BackendCUDA, 20 << 30, "cuda24", true},
		{BackendCPU, 5 << 30, "cpu8", true},
		{BackendAny, 79 << 30, "", false},
	}
	for _, tc := range tests {
		got, ok := ClassFor(tc.backend, tc.bytes)
		if got != tc.want || ok != tc.ok {
			t.Errorf("ClassFor(%q, %d) = %q %v, want %q %v", tc.backend, tc.bytes, got, ok, tc.want, tc.ok)
		}
	}
}

func TestClassesForNode(t *testing.T) {
	// A "24 GB" card reports a little under 24 GiB.
	got := ClassesForNode(BackendCUDA, 24564<<20)
	want := []Class{"cuda24", "vram24", "cuda16", "vram16", "cuda8", "vram8", "cuda4", "vram4"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("24 GB cuda node classes = %v, want %v", got, want)
	}
	if got := ClassesForNode(BackendCPU, 2<<30); len(got) != 0 {
		t.Fatalf("2 GiB cpu node classes = %v, want none", got)
	}
	// Every task a node's class admits fits the node.
	for _, c := range ClassesForNode(BackendCPU, 10<<30) {
		_, tier, err := ParseClass(c)
		if err != nil || tier.TaskMaxBytes() > 10<<30 {
			t.Fatalf("class %s: %v", c, err)
		}
		if ok, why := CanServe(BackendCPU, 10<<30, c); !ok {
			t.Fatalf("CanServe %s: %s", c, why)
		}
	}
	if ok, why := CanServe(BackendCPU, 64<<30, "cuda8"); ok || why == "" {
		t.Fatal("cpu node may not serve a cuda class")
	}
	if ok, why := CanServe(BackendCUDA, 8<<30, "vram16"); ok || why == "" {
		t.Fatal("8 GiB node may not serve vram16")
	}
}

func TestClasses_FiltersDoNotOverlap(t *testing.T) {
	seen := map[string]bool{}
	for _, c := range AllClasses() {
		if _, _, err := ParseClass(c); err != nil {
			t.Fatal(err)
		}
		for _, p := range Priorities {
			f := TaskFilter(c, p)
			if seen[f] {
				t.Fatalf("filter %s twice", f)
			}
			seen[f] = true
		}
	}
	if len(seen) != len(Tiers)*3*3 {
		t.Fatalf("%d filters", len(seen))
	}
}

func TestPriorityOrder_Fair(t *testing.T) {
	first := map[Priority]int{}
	for tick := uint64(0); tick < 100; tick++ {
		o := PriorityOrder(tick)
		if len(o) != 3 {
			t.Fatalf("order %v", o)
		}
		first[o[0]]++
	}
	if first[PriorityHigh] != 60 || first[PriorityNormal] != 30 || first[PriorityLow] != 10 {
		t.Fatalf("first picks per 100 pulls = %v, want 60/30/10", first)
	}
	plan := PullPlan([]Class{"vram8", "vram4"}, 0)
	if len(plan) != 6 || plan[0] != (Pull{"vram8", PriorityHigh}) || plan[1] != (Pull{"vram4", PriorityHigh}) {
		t.Fatalf("plan = %v", plan)
	}
}
