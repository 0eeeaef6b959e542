package wire

import (
	"strings"
	"testing"
)

// TestSubjects_ParseWhatTheyBuild: task and wake subjects split back into
// what built them, a task's wake subject is in its class's wake filter, and
// other subjects are refused.
func TestSubjects_ParseWhatTheyBuild(t *testing.T) {
	for _, c := range AllClasses() {
		for _, p := range Priorities {
			gc, gp, job, ok := ParseTaskSubject(TaskSubject(c, p, "job-1"))
			if !ok || gc != c || gp != p || job != "job-1" {
				t.Fatalf("task subject of %s/%s parsed as %s/%s/%s, %v", c, p, gc, gp, job, ok)
			}
			wc, wp, ok := ParseWakeSubject(WakeSubject(c, p))
			if !ok || wc != c || wp != p {
				t.Fatalf("wake subject of %s/%s parsed as %s/%s, %v", c, p, wc, wp, ok)
			}
			if prefix := WakeFilter(c)[:len(WakeFilter(c))-1]; !strings.HasPrefix(WakeSubject(c, p), prefix) {
				t.Fatalf("wake subject %s is not under %s", WakeSubject(c, p), WakeFilter(c))
			}
		}
	}
	for _, s := range []string{"", "tasks", "tasks.a.b", "tasks.a.b.c.d", "results.a.b.c", "wake.a", "wake.a.b.c", "cancel.a.b"} {
		if _, _, _, ok := ParseTaskSubject(s); ok {
			t.Errorf("ParseTaskSubject(%q) accepted", s)
		}
		if _, _, ok := ParseWakeSubject(s); ok {
			t.Errorf("ParseWakeSubject(%q) accepted", s)
		}
	}
}
