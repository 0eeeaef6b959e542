package main

import (
	"encoding/json"
	"errors"
	"io"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"
)

// addOutputFlag defines -o/--output on a command that prints records, and
// its old --json as a deprecated alias of -o json.
func addOutputFlag(c *cobra.Command) *outputFormat {
	o := outputTable
	fs := c.Flags()
	fs.VarP(&o, "output", "o", "output format: "+alternatives(outputFormats))
	_ = c.RegisterFlagCompletionFunc("output", cobra.FixedCompletions(outputFormats, cobra.ShellCompDirectiveNoFileComp))
	fs.Var((*jsonAlias)(&o), "json", "print JSON (old form of -o json)")
	fs.Lookup("json").NoOptDefVal = "true"
	_ = fs.MarkDeprecated("json", "use -o json")
	return &o
}

// jsonAlias is --json: a boolean that sets -o json.
type jsonAlias outputFormat

func (j *jsonAlias) Set(s string) error {
	switch s {
	case "true":
		*j = jsonAlias(outputJSON)
	case "false":
		*j = jsonAlias(outputTable)
	default:
		return errors.New("want true or false")
	}
	return nil
}

func (j *jsonAlias) String() string   { return "false" }
func (j *jsonAlias) Type() string     { return "bool" }
func (j *jsonAlias) IsBoolFlag() bool { return true }

// printRecord prints v as the format asks: JSON and YAML from v's JSON
// form, the table (the human view) by table.
func printRecord(w io.Writer, format outputFormat, v any, table func(io.Writer) error) error {
	switch format {
	case outputJSON:
		return printJSON(w, v)
	case outputYAML:
		data, err := yaml.Marshal(v)
		if err != nil {
			return err
		}
		_, err = w.Write(data)
		return err
	}
	return table(w)
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
