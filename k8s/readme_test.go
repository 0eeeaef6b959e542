package k8s

import (
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/latentfarm/latentfarm/shared/wire"
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
	header, all := markdownTable(doc, "terminationGracePeriodSeconds")
	rows = map[string][]string{}
	for _, c := range all {
		rows[c[0]] = c
	}
	return header, rows
}

// markdownTable reads the first Markdown table whose header has a cell
// column: its header cells and the cells of each row that has as many, each
// trimmed of spaces and backquotes.
func markdownTable(doc, column string) (header []string, rows [][]string) {
	cells := func(line string) []string {
		var out []string
		for _, c := range strings.Split(strings.Trim(strings.TrimSpace(line), "|"), "|") {
			out = append(out, strings.Trim(strings.TrimSpace(c), "`"))
		}
		return out
	}
	lines := strings.Split(doc, "\n")
	for i, line := range lines {
		if !strings.HasPrefix(line, "|") || !slices.Contains(cells(line), column) {
			continue
		}
		header = cells(line)
		for _, row := range lines[i+2:] { // past the |---| line
			if !strings.HasPrefix(row, "|") {
				break
			}
			if c := cells(row); len(c) == len(header) {
				rows = append(rows, c)
			}
		}
		break
	}
	return header, rows
}

// TestREADME_CountTableMatchesManifests keeps the table of "What wakes a
// pool" true to the built overlays: for each overlay and pool the classes its
// ScaledObject counts and its number of triggers, and in the row "none" the
// classes no pool of the overlay counts.
func TestREADME_CountTableMatchesManifests(t *testing.T) {
	data, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	const countsCol = "counts the classes"
	header, rows := markdownTable(string(data), countsCol)
	col := func(name string) int {
		i := slices.Index(header, name)
		if i < 0 {
			t.Fatalf("README.md: no table with the columns overlay, pool, %q and triggers", countsCol)
		}
		return i
	}
	overlayCol, poolCol, classesCol, triggersCol := col("overlay"), col("pool"), col(countsCol), col("triggers")
	type key struct{ overlay, pool string }
	table := map[key][]string{}
	for _, r := range rows {
		for _, o := range strings.Split(r[overlayCol], ",") {
			k := key{strings.TrimSpace(o), r[poolCol]}
			if _, dup := table[k]; dup {
				t.Errorf("README.md: two rows for overlay %s, pool %s", k.overlay, k.pool)
			}
			table[k] = r
		}
	}
	used := map[key]bool{}
	check := func(k key, classes map[wire.Class]bool, triggers int) {
		row, ok := table[k]
		if !ok {
			t.Errorf("README.md: no row for overlay %s, pool %s (it counts %d classes)", k.overlay, k.pool, len(classes))
			return
		}
		used[k] = true
		var want, got []string
		for _, c := range wire.AllClasses() {
			if classes[c] {
				want = append(want, string(c))
			}
		}
		for _, c := range strings.Split(row[classesCol], ",") {
			got = append(got, strings.TrimSpace(c))
		}
		if !slices.Equal(got, want) {
			t.Errorf("README.md: overlay %s, pool %s: classes %q, the manifests give %q", k.overlay, k.pool, row[classesCol], strings.Join(want, ", "))
		}
		if row[triggersCol] != strconv.Itoa(triggers) {
			t.Errorf("README.md: overlay %s, pool %s: %s triggers, the manifests have %d", k.overlay, k.pool, row[triggersCol], triggers)
		}
	}
	for _, dir := range overlays {
		b := built(t, dir)
		overlay := path.Base(dir)
		counted := map[wire.Class]bool{}
		for _, p := range nodePools(t, b) {
			mine := scaledObjectsFor(b, p)
			if len(mine) != 1 {
				continue // TestNodePools_ScaleOnTheBacklogTheyCount reports it
			}
			classes := countedClasses(mine[0])
			for c := range classes {
				counted[c] = true
			}
			check(key{overlay, p.Name}, classes, len(mine[0].Spec.Triggers))
		}
		none := map[wire.Class]bool{}
		for _, c := range wire.AllClasses() {
			if !counted[c] {
				none[c] = true
			}
		}
		if len(none) > 0 {
			check(key{overlay, "none"}, none, 0)
		}
	}
	for k := range table {
		if !used[k] {
			t.Errorf("README.md: row for overlay %s, pool %s, which the overlays do not have", k.overlay, k.pool)
		}
	}
}
