package node

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/latentfarm/latentfarm/shared/wire"
)

// TestModels_NameRuleIsTheWires: a name the coordinator accepts (up to 128
// characters) is one a node looks up; one it refuses, the node refuses too.
func TestModels_NameRuleIsTheWires(t *testing.T) {
	dir := t.TempDir()
	long := strings.Repeat("m", wire.MaxModelNameBytes)
	if err := os.Mkdir(filepath.Join(dir, long), 0o755); err != nil {
		t.Fatal(err)
	}
	m := &Models{Dir: dir}
	if p, err := m.Path(context.Background(), long); err != nil || p != filepath.Join(dir, long) {
		t.Errorf("a %d-character name: %q, %v", len(long), p, err)
	}
	for _, bad := range []string{"", ".hidden", "..", "a/b", long + "m", "sp ace"} {
		if wire.ValidModelName(bad) {
			t.Errorf("wire accepts %q", bad)
		}
		if _, err := m.Path(context.Background(), bad); !errors.Is(err, ErrModelNotFound) || !strings.Contains(err.Error(), wire.ModelNameRule) {
			t.Errorf("%q: %v, want a not-found error stating the rule", bad, err)
		}
	}
}
