package deploy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/latentfarm/latentfarm/coordinator"
	"github.com/latentfarm/latentfarm/node"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/prometheus/promql/parser"
)

const dashboardFile = "grafana/latentfarm.json"

// dashboardMetrics are the series the issue asks the dashboard to show.
var dashboardMetrics = []string{
	"latentfarm_tasks_pending",
	"latentfarm_tasks_running",
	"latentfarm_frames_total",
	"latentfarm_task_duration_seconds_bucket",
	"latentfarm_task_failures_total",
	"latentfarm_node_vram_bytes",
	"latentfarm_gpu_seconds_total",
	"process_resident_memory_bytes",
	"go_memstats_heap_inuse_bytes",
}

func TestDashboard_QueriesUseRealMetrics(t *testing.T) {
	data, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range checkDashboard(data, farmMetrics(t)) {
		t.Error(p)
	}
}

// TestDashboard_BrokenCopiesFail feeds the checker copies of the dashboard
// with one mistake each.
func TestDashboard_BrokenCopiesFail(t *testing.T) {
	data, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	metrics := farmMetrics(t)
	for _, tc := range []struct {
		name, old, new, want string
	}{
		{"misspelt metric", "latentfarm_tasks_running", "latentfarm_task_running", `unknown metric "latentfarm_task_running"`},
		{"misspelt label", `kind=\"free\"`, `knid=\"free\"`, `label "knid"`},
		{"grouping by a missing label", "sum by (reason)", "sum by (code)", `by "code"`},
		{"bucket of a counter", "latentfarm_task_failures_total[", "latentfarm_task_failures_total_bucket[", `unknown metric "latentfarm_task_failures_total_bucket"`},
		{"syntax error", "sum by (result) (rate(", "sum by (result) ((rate(", "parse"},
		{"unknown variable", "$__rate_interval", "$interval", "template variable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			broken := bytes.Replace(data, []byte(tc.old), []byte(tc.new), 1)
			if bytes.Equal(broken, data) {
				t.Fatalf("the dashboard has no %q to break", tc.old)
			}
			problems := checkDashboard(broken, metrics)
			if !strings.Contains(strings.Join(problems, "\n"), tc.want) {
				t.Fatalf("want a problem containing %q, got %q", tc.want, problems)
			}
		})
	}
}

// metricInfo is what a registered metric family offers a query.
type metricInfo struct {
	kind   dto.MetricType // COUNTER, GAUGE, HISTOGRAM, SUMMARY or UNTYPED when unknown
	labels map[string]bool
}

// farmMetrics collects every metric family the farm serves on /metrics: the
// coordinator's and the node's (each from its NewMetrics().Collectors()) and
// the Go and process collectors both register beside them.
func farmMetrics(t *testing.T) map[string]metricInfo {
	t.Helper()
	var cs []prometheus.Collector
	cs = append(cs, coordinator.NewMetrics().Collectors()...)
	cs = append(cs, node.NewMetrics().Collectors()...)
	std := []prometheus.Collector{collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})}
	metrics := map[string]metricInfo{}
	for _, c := range append(cs, std...) {
		kind := dto.MetricType_UNTYPED
		switch c.(type) {
		case prometheus.Histogram, *prometheus.HistogramVec:
			kind = dto.MetricType_HISTOGRAM
		case prometheus.Summary, *prometheus.SummaryVec:
			kind = dto.MetricType_SUMMARY
		}
		ch := make(chan *prometheus.Desc)
		go func() { c.Describe(ch); close(ch) }()
		for d := range ch {
			name, labels, err := parseDesc(d.String())
			if err != nil {
				t.Fatal(err)
			}
			metrics[name] = metricInfo{kind: kind, labels: labels}
		}
	}
	// The standard collectors always yield their series, which tells their
	// types (the Go collector's summaries among them).
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(std...)
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		m, ok := metrics[f.GetName()]
		if !ok {
			t.Fatalf("gathered %s, which no collector described", f.GetName())
		}
		m.kind = f.GetType()
		metrics[f.GetName()] = m
	}
	for _, want := range []string{"latentfarm_tasks_pending", "latentfarm_node_vram_bytes", "go_memstats_heap_inuse_bytes"} {
		if _, ok := metrics[want]; !ok {
			t.Fatalf("collected no %s: the collection is broken (%d metrics)", want, len(metrics))
		}
	}
	return metrics
}

var (
	descName   = regexp.MustCompile(`^Desc\{fqName: ("(?:[^"\\]|\\.)*")`)
	descLabels = regexp.MustCompile(`constLabels: \{(.*)\}, variableLabels: \{([^}]*)\}\}$`)
	constLabel = regexp.MustCompile(`(?:^|,)([a-zA-Z_][a-zA-Z0-9_]*)="`)
)

// parseDesc reads the name and label names out of Desc.String(), the only
// way client_golang shows them.
func parseDesc(s string) (string, map[string]bool, error) {
	m := descName.FindStringSubmatch(s)
	if m == nil {
		return "", nil, fmt.Errorf("cannot read the name of %s", s)
	}
	name, err := strconv.Unquote(m[1])
	if err != nil {
		return "", nil, fmt.Errorf("%s: %w", s, err)
	}
	l := descLabels.FindStringSubmatch(s)
	if l == nil {
		return "", nil, fmt.Errorf("cannot read the labels of %s", s)
	}
	labels := map[string]bool{}
	for _, c := range constLabel.FindAllStringSubmatch(l[1], -1) {
		labels[c[1]] = true
	}
	for _, v := range strings.Split(l[2], ",") {
		v = strings.TrimSuffix(strings.TrimPrefix(v, "c("), ")")
		if v != "" {
			labels[v] = true
		}
	}
	return name, labels, nil
}

// Grafana's interval macros, replaced before parsing; any other $ is a
// template variable the dashboard does not define.
var grafanaMacros = strings.NewReplacer(
	"${__rate_interval}", "5m", "$__rate_interval", "5m",
	"${__interval}", "1m", "$__interval", "1m",
	"${__range}", "1h", "$__range", "1h",
)

// checkDashboard lists what is wrong with a Grafana dashboard: its shape,
// and each PromQL query parsed and resolved against metrics.
func checkDashboard(data []byte, metrics map[string]metricInfo) []string {
	var dash struct {
		SchemaVersion int `json:"schemaVersion"`
		Templating    struct {
			List []struct {
				Name, Type string
			} `json:"list"`
		} `json:"templating"`
		Panels []dashPanel `json:"panels"`
	}
	if err := json.Unmarshal(data, &dash); err != nil {
		return []string{"dashboard: " + err.Error()}
	}
	var problems []string
	if dash.SchemaVersion < 36 {
		problems = append(problems, fmt.Sprintf("schemaVersion %d: want 36 or later", dash.SchemaVersion))
	}
	hasDS := false
	for _, v := range dash.Templating.List {
		hasDS = hasDS || v.Type == "datasource" && v.Name == "datasource"
	}
	if !hasDS {
		problems = append(problems, `no "datasource" variable of type datasource: panels use ${datasource}`)
	}
	ids := map[int]string{}
	seen := map[string]bool{}
	var walk func([]dashPanel)
	walk = func(panels []dashPanel) {
		for _, p := range panels {
			if other, ok := ids[p.ID]; ok {
				problems = append(problems, fmt.Sprintf("panel %q: id %d already used by %q", p.Title, p.ID, other))
			}
			ids[p.ID] = p.Title
			walk(p.Panels)
			if p.Type == "row" {
				continue
			}
			if p.Datasource.UID != "${datasource}" {
				problems = append(problems, fmt.Sprintf("panel %q: datasource uid %q, want ${datasource}", p.Title, p.Datasource.UID))
			}
			if len(p.Targets) == 0 {
				problems = append(problems, fmt.Sprintf("panel %q: no queries", p.Title))
			}
			for _, tg := range p.Targets {
				used, ps := checkQuery(tg.Expr, metrics)
				for _, q := range ps {
					problems = append(problems, fmt.Sprintf("panel %q, query %s: %s", p.Title, tg.RefID, q))
				}
				for _, u := range used {
					seen[u] = true
				}
			}
		}
	}
	walk(dash.Panels)
	for _, m := range dashboardMetrics {
		if !seen[m] {
			problems = append(problems, "no panel shows "+m)
		}
	}
	return problems
}

type dashPanel struct {
	ID         int    `json:"id"`
	Type       string `json:"type"`
	Title      string `json:"title"`
	Datasource struct {
		UID string `json:"uid"`
	} `json:"datasource"`
	Targets []struct {
		RefID string `json:"refId"`
		Expr  string `json:"expr"`
	} `json:"targets"`
	Panels []dashPanel `json:"panels"` // a collapsed row's
}

// targetLabels are added by Prometheus to every scraped series; a metric's
// own label of that name arrives renamed exported_<name>.
var targetLabels = []string{"job", "instance"}

// checkQuery parses a PromQL query and resolves each selector's metric and
// labels, and each aggregation's grouping labels. It returns the series
// names the query reads.
func checkQuery(expr string, metrics map[string]metricInfo) ([]string, []string) {
	q := grafanaMacros.Replace(expr)
	if strings.Contains(q, "$") {
		return nil, []string{fmt.Sprintf("%q: unknown template variable", expr)}
	}
	ast, err := parser.ParseExpr(q)
	if err != nil {
		return nil, []string{fmt.Sprintf("%q: parse: %v", expr, err)}
	}
	var used, problems []string
	parser.Inspect(ast, func(n parser.Node, _ []parser.Node) error {
		switch n := n.(type) {
		case *parser.VectorSelector:
			name := selectorName(n)
			used = append(used, name)
			labels, err := seriesLabels(name, metrics)
			if err != nil {
				problems = append(problems, err.Error())
				return nil
			}
			for _, m := range n.LabelMatchers {
				if m.Name != "__name__" && !labels[m.Name] {
					problems = append(problems, fmt.Sprintf("%s has no label %q (it has %s)", name, m.Name, keys(labels)))
				}
			}
		case *parser.AggregateExpr:
			avail := map[string]bool{}
			parser.Inspect(n.Expr, func(n parser.Node, _ []parser.Node) error {
				if vs, ok := n.(*parser.VectorSelector); ok {
					labels, _ := seriesLabels(selectorName(vs), metrics)
					for l := range labels {
						avail[l] = true
					}
				}
				return nil
			})
			for _, g := range n.Grouping {
				if !avail[g] {
					problems = append(problems, fmt.Sprintf("%s by %q: no series below has that label (they have %s)", n.Op, g, keys(avail)))
				}
			}
		}
		return nil
	})
	return used, problems
}

func selectorName(vs *parser.VectorSelector) string {
	if vs.Name != "" {
		return vs.Name
	}
	for _, m := range vs.LabelMatchers {
		if m.Name == "__name__" {
			return m.Value
		}
	}
	return ""
}

// seriesLabels resolves a series name to the labels its series carry once
// scraped: a family's own name, or a histogram's _bucket/_sum/_count or a
// summary's _sum/_count.
func seriesLabels(name string, metrics map[string]metricInfo) (map[string]bool, error) {
	extra := ""
	m, ok := metrics[name]
	if ok && m.kind == dto.MetricType_HISTOGRAM {
		return nil, fmt.Errorf("%s is a histogram: its series are %s_bucket, _sum and _count", name, name)
	}
	if ok && m.kind == dto.MetricType_SUMMARY {
		extra = "quantile"
	}
	if !ok {
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			b, found := strings.CutSuffix(name, suffix)
			if !found {
				continue
			}
			bm, bok := metrics[b]
			switch {
			case bok && bm.kind == dto.MetricType_HISTOGRAM:
				if suffix == "_bucket" {
					extra = "le"
				}
			case bok && bm.kind == dto.MetricType_SUMMARY && suffix != "_bucket":
			default:
				continue
			}
			m, ok = bm, true
			break
		}
	}
	if !ok {
		return nil, fmt.Errorf("unknown metric %q: neither the coordinator, the node nor the Go and process collectors register it", name)
	}
	labels := map[string]bool{}
	for l := range m.labels {
		labels[l] = true
	}
	for _, t := range targetLabels {
		if labels[t] {
			delete(labels, t)
			labels["exported_"+t] = true
		}
		labels[t] = true
	}
	if extra != "" {
		labels[extra] = true
	}
	return labels, nil
}

func keys(m map[string]bool) string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return "{" + strings.Join(out, ", ") + "}"
}
