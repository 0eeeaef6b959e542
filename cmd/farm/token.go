package main

import (
	"cmp"
	"crypto/rand"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/latentfarm/latentfarm/localfarm"
	"github.com/latentfarm/latentfarm/shared/wire"
	"github.com/spf13/cobra"
)

func newTokenCmd() *cobra.Command {
	subs := []*cobra.Command{newTokenCreateCmd(), newTokenRevokeCmd(), newTokenListCmd()}
	names := make([]string, len(subs))
	for i, s := range subs {
		names[i] = s.Name()
	}
	c := &cobra.Command{
		Use:   "token",
		Short: "join tokens: create, revoke, list (run where farm up runs)",
		Long: "Manages the join tokens of the farm that farm up runs on this machine, with the\n" +
			"admin credentials in its data dir. A join token carries the farm's endpoints, its CA\n" +
			"and logins that allow only what a node does; farm node --join-token-file uses it.\n" +
			"See docs/SECURITY.md.",
		DisableFlagsInUseLine: true,
		RunE: func(_ *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usagef("want a subcommand: %s", alternatives(names))
			}
			return usagef("unknown token command %q: want %s", args[0], alternatives(names))
		},
	}
	c.AddCommand(subs...)
	return c
}

// tokenDataFlag is --data of the token commands: farm up's data dir.
func tokenDataFlag(c *cobra.Command) (*settings, *string) {
	s := newSettings(c.Flags())
	dir := new(string)
	addDataFlag(s, dir, "data dir of farm up, whose "+wire.CredentialsFile+" has the admin credentials (default ./"+wire.DefaultDataDir+")")
	return s, dir
}

func newTokenCreateCmd() *cobra.Command {
	var (
		name string
		ttl  time.Duration
		out  string
	)
	c := &cobra.Command{
		Use:   "create",
		Short: "issue a join token and write it to a file of mode 0600",
		Long: "Issues a join token for the nodes of one machine or pool: they take node ids NAME or\n" +
			"NAME-SUFFIX. The token is written to --out (mode 0600; - writes it to stdout, for a\n" +
			"secret store) and never shown otherwise. Copy it to the node's machine over a safe\n" +
			"channel and run: farm node --join-token-file FILE",
		Args: noArgs,
	}
	s, dir := tokenDataFlag(c)
	fs := c.Flags()
	fs.StringVar(&name, "name", "", "token name, 1 to 32 lower-case letters and digits (default: a random one)")
	ttl = 24 * time.Hour
	s.Duration(&ttl, "ttl", "how long the token works, such as 24h or 720h; 0: until revoked")
	fs.StringVarP(&out, "out", "O", "", "file to write the token to (default NAME.token in the current folder; - for stdout)")
	c.RunE = func(c *cobra.Command, _ []string) error {
		if err := s.apply(); err != nil {
			return err
		}
		if name == "" {
			name = randomTokenName()
		}
		if !wire.ValidTokenName(name) {
			return usagef("--name %q: want 1 to %d lower-case letters and digits", name, wire.MaxTokenName)
		}
		out = cmp.Or(out, name+".token")
		t, err := localfarm.CreateToken(c.Context(), cmp.Or(*dir, wire.DefaultDataDir), name, ttl)
		if err != nil {
			return err
		}
		if out == "-" {
			_, err := fmt.Fprintln(stdout, t.Encode())
			return err
		}
		if err := wire.WriteJoinToken(out, t); err != nil {
			return err
		}
		until := "until revoked"
		if !t.ExpiresAt().IsZero() {
			until = "until " + t.ExpiresAt().Local().Format(time.RFC3339)
		}
		fmt.Fprintf(stdout, "wrote join token %s (%s) to %s\non the node's machine: farm node --join-token-file %s\n",
			name, until, out, out)
		return nil
	}
	return c
}

func newTokenRevokeCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "revoke NAME",
		Short: "cut off the nodes of a join token: its logins and its nodes' entries are deleted",
		Args:  oneArg("token name"),
	}
	s, dir := tokenDataFlag(c)
	c.RunE = func(c *cobra.Command, args []string) error {
		if err := s.apply(); err != nil {
			return err
		}
		if err := localfarm.RevokeToken(c.Context(), cmp.Or(*dir, wire.DefaultDataDir), args[0]); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "revoked join token %s\n", args[0])
		return nil
	}
	return c
}

func newTokenListCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "list",
		Short: "list the join tokens: name, created, expires",
		Args:  noArgs,
	}
	s, dir := tokenDataFlag(c)
	out := addOutputFlag(c)
	c.RunE = func(c *cobra.Command, _ []string) error {
		if err := s.apply(); err != nil {
			return err
		}
		tokens, err := localfarm.Tokens(c.Context(), cmp.Or(*dir, wire.DefaultDataDir))
		if err != nil {
			return err
		}
		return printRecord(stdout, *out, map[string][]localfarm.TokenInfo{"tokens": tokens}, func(w io.Writer) error {
			tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tCREATED\tEXPIRES")
			for _, t := range tokens {
				expires := "never"
				if !t.Expires.IsZero() {
					expires = t.Expires.Local().Format(time.RFC3339)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\n", t.Name, t.Created.Local().Format(time.RFC3339), expires)
			}
			return tw.Flush()
		})
	}
	return c
}

// randomTokenName is "t" and seven random lower-case letters and digits
// (a name, not a secret: the slight modulo bias does not matter).
func randomTokenName() string {
	const chars = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, 7)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = chars[int(b[i])%len(chars)]
	}
	return "t" + string(b)
}
