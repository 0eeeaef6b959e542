package e2e

import (
	"context"
	"encoding/json"
	"math"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/latentfarm/latentfarm/shared/connect"
	"github.com/latentfarm/latentfarm/shared/farmtest"
	"github.com/latentfarm/latentfarm/shared/wire"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// scrape reads a /metrics page into families by name.
func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return fams
}

// value is the value of the series of family name whose labels include
// want, and whether there is one.
func value(fams map[string]*dto.MetricFamily, name string, want map[string]string) (float64, bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
series:
	for _, m := range f.Metric {
		got := map[string]string{}
		for _, l := range m.Label {
			got[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if got[k] != v {
				continue series
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		}
	}
	return 0, false
}

// getJSON fetches url without a token and decodes the body.
func getJSON(t *testing.T, url string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp.StatusCode, body
}

// TestFarm_MetricsHealthAndBacklog submits a job to a farm with no node:
// the class's backlog (what the pool's autoscaler reads) rises to the
// job's tasks, in JetStream and in /metrics. A node then renders it: the
// backlog falls back to 0, and the coordinator's and the node's /metrics
// count the frames; /livez and /readyz answer without a token.
func TestFarm_MetricsHealthAndBacklog(t *testing.T) {
	f := newFarm(t)
	c := f.startCoordinator(t)
	base := c.cli.URL()
	for _, path := range []string{"/livez", "/readyz"} {
		if code, body := getJSON(t, base+path); code != http.StatusOK {
			t.Errorf("coordinator %s: %d %v", path, code, body)
		}
	}
	ctx := context.Background()
	spec := batch("metered", []string{"a", "b"}, 12, 4) // 24 frames, 6 tasks
	spec.AllowPendingModel = true                       // no node yet: the backlog waits
	st, err := c.cli.Submit(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	class := string(st.Class)
	farmtest.Eventually(t, 10*time.Second, func() bool {
		b, err := connect.ClassBacklog(ctx, f.js)
		return err == nil && b[st.Class].Pending == 6
	})
	fams := scrape(t, base+"/metrics")
	if v, ok := value(fams, "latentfarm_tasks_pending", map[string]string{"class": class}); !ok || v != 6 {
		t.Errorf("latentfarm_tasks_pending{class=%q} = %v (%v), want 6 with no node", class, v, ok)
	}
	if _, ok := value(fams, "latentfarm_gpu_seconds_total", map[string]string{"job_id": st.ID}); !ok {
		t.Errorf("no latentfarm_gpu_seconds_total for the open job %s", st.ID)
	}
	for _, name := range []string{"go_goroutines", "process_resident_memory_bytes"} {
		if fams[name] == nil {
			t.Errorf("no %s on the coordinator", name)
		}
	}

	o := f.nodeOptions(t, "metered0", 8, 20*time.Millisecond)
	o.MetricsListen = "127.0.0.1:0"
	o.PricePerHour, o.Currency = 3.6, "EUR" // 0.001 EUR a second
	n := f.startNode(t, o)
	final := waitJob(t, c.cli, st.ID, 60*time.Second)
	if final.State != wire.JobDone {
		t.Fatalf("job ended %s: %s", final.State, final.Error)
	}
	b, err := connect.ClassBacklog(ctx, f.js)
	if err != nil {
		t.Fatal(err)
	}
	if b[st.Class].Pending != 0 || b[st.Class].Running != 0 {
		t.Errorf("backlog after the job: %+v, want 0 pending and 0 running", b[st.Class])
	}
	fams = scrape(t, base+"/metrics")
	for _, tc := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"latentfarm_tasks_pending", map[string]string{"class": class}, 0},
		{"latentfarm_tasks_running", map[string]string{"class": class}, 0},
		{"latentfarm_frames_total", map[string]string{"result": "done"}, 24},
		{"latentfarm_task_duration_seconds", nil, 6},
	} {
		if v, ok := value(fams, tc.name, tc.labels); !ok || v != tc.want {
			t.Errorf("coordinator %s%v = %v (present %v), want %v", tc.name, tc.labels, v, ok, tc.want)
		}
	}
	if _, ok := value(fams, "latentfarm_gpu_seconds_total", map[string]string{"job_id": st.ID}); ok {
		t.Errorf("latentfarm_gpu_seconds_total still has the finished job %s", st.ID)
	}
	checkCosts(t, final, f.manifest(t, st.ID), 0.001)

	node := "http://" + n.MetricsAddr()
	for _, path := range []string{"/livez", "/readyz"} {
		code, body := getJSON(t, node+path)
		if code != http.StatusOK {
			t.Errorf("node %s: %d %v", path, code, body)
		}
		if strings.Contains(strings.ToLower(jsonText(body)), "password") {
			t.Errorf("node %s says something about a password: %v", path, body)
		}
	}
	fams = scrape(t, node+"/metrics")
	// The node counts what it did, and delivery is at least once: a task
	// whose in-progress signal came late on a loaded machine may run twice
	// (the coordinator's counts above are exact).
	for _, tc := range []struct {
		name     string
		labels   map[string]string
		min, max float64
	}{
		{"latentfarm_node_frames_total", nil, 24, 48},
		{"latentfarm_node_tasks_total", map[string]string{"result": "done"}, 6, 12},
		{"latentfarm_node_vram_bytes", map[string]string{"kind": "total"}, 8 << 30, 8 << 30},
		{"latentfarm_node_busy", nil, 0, 0},
	} {
		if v, ok := value(fams, tc.name, tc.labels); !ok || v < tc.min || v > tc.max {
			t.Errorf("node %s%v = %v (present %v), want %v..%v", tc.name, tc.labels, v, ok, tc.min, tc.max)
		}
	}
}

// checkCosts checks the priced GPU-seconds of a job rendered on one node
// at perSecond: in the job's status, the manifest and every frame.
func checkCosts(t *testing.T, st wire.JobStatus, m wire.Manifest, perSecond float64) {
	t.Helper()
	near := func(a, b float64) bool { return math.Abs(a-b) <= 1e-9+1e-6*math.Abs(b) }
	if st.Cost.Currency != "EUR" || st.GPUSeconds <= 0 || !near(st.Cost.Amount, st.GPUSeconds*perSecond) {
		t.Errorf("job cost %+v for %.3f GPU-seconds, want %.6f EUR", st.Cost, st.GPUSeconds, st.GPUSeconds*perSecond)
	}
	if m.Cost != st.Cost || !near(m.CostPerImage, m.Cost.Amount/float64(len(m.Frames))) {
		t.Errorf("manifest cost %+v, %.6f per image; job %+v", m.Cost, m.CostPerImage, st.Cost)
	}
	sum := 0.0
	for _, fr := range m.Frames {
		if fr.GPUSeconds <= 0 || !near(fr.Cost, fr.GPUSeconds*perSecond) {
			t.Errorf("frame %d: %.4f GPU-seconds cost %.6f", fr.Index, fr.GPUSeconds, fr.Cost)
		}
		sum += fr.GPUSeconds
	}
	if sum > m.GPUSeconds*1.0001 {
		t.Errorf("frames' GPU-seconds sum to %.3f, more than the job's %.3f", sum, m.GPUSeconds)
	}
}

func jsonText(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
