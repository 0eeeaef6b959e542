package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"github.com/latentfarm/latentfarm/client"
	"github.com/latentfarm/latentfarm/shared/connect"
	"github.com/latentfarm/latentfarm/shared/wire"
)

func init() {
	register("jobs", "list jobs", runJobs)
}

// clientFlags are the flags every API command takes to find the coordinator.
type clientFlags struct {
	url, token, data string
	tls              connect.TLSFiles
}

func (cf *clientFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&cf.url, "url", "", "coordinator URL ($FARM_URL; default from the farm up credentials)")
	fs.StringVar(&cf.token, "token", "", "API token ($FARM_TOKEN; default from the farm up credentials)")
	fs.StringVar(&cf.data, "data", "", "farm up data dir holding "+wire.CredentialsFile+" ($FARM_DATA, default ./"+wire.DefaultDataDir+")")
	fs.StringVar(&cf.tls.CAFile, "ca", "", "CA file that signed an HTTPS coordinator's certificate")
	fs.StringVar(&cf.tls.CertFile, "cert", "", "client certificate for mutual TLS")
	fs.StringVar(&cf.tls.KeyFile, "key", "", "client key for mutual TLS")
}

func (cf *clientFlags) client() (*client.Client, error) {
	u, tok, err := client.Resolve(cf.url, cf.token, cf.data)
	if err != nil {
		return nil, err
	}
	return client.New(client.Options{URL: u, Token: tok, TLS: cf.tls})
}

// jobArgs parses the flags of a command about one job ("farm job ID
// --json"), checks that exactly one id was given and opens the client.
func (cf *clientFlags) jobArgs(fs *flag.FlagSet, args []string) (string, *client.Client, error) {
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return "", nil, err
	}
	if len(pos) != 1 {
		return "", nil, usagef("want one job id, got %q", pos)
	}
	cli, err := cf.client()
	return pos[0], cli, err
}

// parseInterspersed parses flags that may follow positional arguments
// ("farm job ID --json") and returns the positional ones.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := parseFlags(fs, args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if rest[0] == "--" {
			return append(pos, rest[1:]...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func runJobs(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("jobs", flag.ContinueOnError)
	var cf clientFlags
	cf.register(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	state := fs.String("state", "", "only jobs in this state: queued, running, done, failed, cancelled")
	limit := fs.Int("limit", 50, "at most this many jobs, newest first")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: farm jobs [flags]\n\n")
		fs.PrintDefaults()
	}
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("unexpected arguments %q", pos)
	}
	cli, err := cf.client()
	if err != nil {
		return err
	}
	jobs, err := cli.Jobs(ctx, *state, *limit)
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(os.Stdout, wire.JobList{Jobs: jobs})
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATE\tFRAMES\tFAILED\tPRIORITY\tMODEL\tGPU-S\tCOST\tAGE\tNAME")
	now := time.Now()
	for _, j := range jobs {
		cost := j.Cost.String()
		if cost == "" {
			cost = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d/%d\t%d\t%s\t%s\t%.1f\t%s\t%s\t%s\n", j.ID, j.State, j.FramesDone, j.FramesTotal,
			j.FramesFailed, j.Priority, j.Model, j.GPUSeconds, cost, age(now.Sub(j.CreatedAt)), j.Name)
	}
	return tw.Flush()
}

// age renders a duration coarsely: 45s, 12m, 3h, 2d.
func age(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}
