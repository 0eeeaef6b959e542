package k8s

import (
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestREADME_PoolTableMatchesManifests keeps the pool table of README.md
// (the grace-period rule's table) true to the manifests.
func TestREADME_PoolTableMatchesManifests(t *testing.T) {
	data, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	header, rows := poolTable(string(data))
	col := func(name string) int {
		i := slices.Index(header, name)
		if i < 0 {
			t.Fatalf("README.md: no pool table with a column %q", name)
		}
		return i
	}
	drainCol, graceCol, classCol := col("--drain-timeout"), col("terminationGracePeriodSeconds"), col("class")
	seen := map[string]bool{}
	for _, dir := range overlays {
		for _, p := range nodePools(t, built(t, dir)) {
			if seen[p.Name] {
				continue
			}
			seen[p.Name] = true
			row, ok := rows[p.Name]
			if !ok {
				t.Errorf("README.md: no row for pool %s in the pool table", p.Name)
				continue
			}
			drain, _ := flagValue(p.Node.Args, "drain-timeout")
			d, _ := time.ParseDuration(drain)
			if rd, err := time.ParseDuration(row[drainCol]); err != nil || rd != d {
				t.Errorf("README.md: pool %s: --drain-timeout %q, the manifest has %s", p.Name, row[drainCol], drain)
			}
			if g := p.Spec.Template.Spec.TerminationGracePeriodSeconds; g == nil || row[graceCol] != strconv.FormatInt(*g, 10) {
				t.Errorf("README.md: pool %s: grace period %q, the manifest has %v", p.Name, row[graceCol], deref(g))
			}
			if row[classCol] != string(p.Class) {
				t.Errorf("README.md: pool %s: class %q, the manifest has %s", p.Name, row[classCol], p.Class)
			}
		}
	}
	for name := range rows {
		if !seen[name] {
			t.Errorf("README.md: pool %s is in the table but in no overlay", name)
		}
	}
}

// poolTable reads the Markdown table whose header has a
// terminationGracePeriodSeconds column: its header cells, and its rows by
// their first cell (the pool).
func poolTable(doc string) (header []string, rows map[string][]string) {
	cells := func(line string) []string {
		var out []string
		for _, c := range strings.Split(strings.Trim(strings.TrimSpace(line), "|"), "|") {
			out = append(out, strings.Trim(strings.TrimSpace(c), "`"))
		}
		return out
	}
	rows = map[string][]string{}
	lines := strings.Split(doc, "\n")
	for i, line := range lines {
		if !strings.HasPrefix(line, "|") || !strings.Contains(line, "terminationGracePeriodSeconds") {
			continue
		}
		header = cells(line)
		for _, row := range lines[i+2:] { // past the |---| line
			if !strings.HasPrefix(row, "|") {
				break
			}
			if c := cells(row); len(c) == len(header) {
				rows[c[0]] = c
			}
		}
		break
	}
	return header, rows
}
