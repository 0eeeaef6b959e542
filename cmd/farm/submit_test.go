package main

import (
	"flag"
	"strings"
	"testing"

	"github.com/latentfarm/latentfarm/shared/wire"
)

func TestSubmitFlags_Apply(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string // error text; empty for success
	}{
		{[]string{"--steps", "0"}, "--steps 0: must be at least 1"},
		{[]string{"--width", "-8", "--height", "64"}, "--width -8: must be at least 1"},
		{[]string{"--seeds", "1,x", "--steps", "20"}, `--seeds: "x" is not a number`},
		{[]string{"--steps", "12", "--width", "32", "--height", "48", "--seeds", "3,4"}, ""},
	} {
		fs := flag.NewFlagSet("submit", flag.ContinueOnError)
		var sf submitFlags
		sf.register(fs)
		if err := fs.Parse(tc.args); err != nil {
			t.Fatal(err)
		}
		var spec wire.JobSpec
		err := sf.apply(fs, &spec)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%v: %v", tc.args, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%v: error %v, want %q", tc.args, err, tc.want)
		case tc.want == "" && (spec.Steps != 12 || spec.Width != 32 || spec.Height != 48 || len(spec.Seeds.List) != 2):
			t.Errorf("%v: spec %+v", tc.args, spec)
		}
	}
}
