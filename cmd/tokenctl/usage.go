package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// shortUsage follows every usage error's one line of reason.
const shortUsage = `usage: tokenctl [-url URL] [-timeout 30s] refresh|retry <connection id> | show <connection id> [-o json] |
       refresh <connection id> --rejected-token-sha256 HEX|--rejected-token-stdin [--wait 20s] |
       list --state failing|expired|due [--provider KIND|TYPE] [-o json] | summary     (tokenctl -h for more)`

// commands are tokenctl's commands, in the order the usage gives them.
var commands = []string{"refresh", "retry", "show", "list", "summary"}

// states are the values of list --state (the API's ?state=).
var states = []string{"failing", "expired", "due"}

func printUsage(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprintln(w, strings.Split(shortUsage, "     (")[0])
	fmt.Fprintln(w, "environment: TOKENCTL_URL (default http://127.0.0.1:8081), API_TOKEN (required)")
	fmt.Fprintln(w, "exit status: 0 done, 1 error, 2 usage, 3 a refresh already queued or running (or not failing, for retry), 4 unknown or inactive connection,")
	fmt.Fprintln(w, "             5 a reported token's refresh still under way when --wait ended, 6 its refresh was refused")
	out := fs.Output()
	fs.SetOutput(w)
	fs.PrintDefaults()
	fs.SetOutput(out)
}

// checkArgs says what is wrong with a command line, from the command line
// alone: the command, its arguments and list's --state. output is -o as
// given before the command.
func checkArgs(args []string, output string) error {
	if len(args) == 0 {
		return errors.New("no command given: one of " + strings.Join(commands, ", "))
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "refresh", "retry":
		_, err := parseRefresh(cmd, rest)
		return err
	case "summary":
		if len(rest) > 0 {
			return fmt.Errorf("summary takes no arguments (got %q)", rest[0])
		}
		return nil
	case "show", "list":
		v, err := parseView(cmd, rest, output, io.Discard)
		if err != nil {
			return err
		}
		if cmd == "show" {
			if v.state != "" || v.provider != "" {
				return errors.New("show takes no --state or --provider (those are list's)")
			}
			return checkID(cmd, v.args)
		}
		if len(v.args) > 0 {
			return fmt.Errorf("list takes no arguments (got %q); the state goes in --state", v.args[0])
		}
		if v.state == "" {
			return errors.New("--state is required: one of " + strings.Join(states, ", "))
		}
		for _, s := range states {
			if v.state == s {
				return nil
			}
		}
		return fmt.Errorf("--state %q is not one of %s", v.state, strings.Join(states, ", "))
	default:
		return fmt.Errorf("unknown command %s (one of %s)", cmd, strings.Join(commands, ", "))
	}
}

func checkID(cmd string, rest []string) error {
	switch {
	case len(rest) == 0:
		return errors.New(cmd + " needs a connection id")
	case len(rest) > 1:
		return fmt.Errorf("%s takes one connection id (got %d arguments)", cmd, len(rest))
	}
	if id, err := strconv.ParseInt(rest[0], 10, 64); err != nil || id <= 0 {
		return fmt.Errorf("the connection id must be a positive whole number (got %q)", rest[0])
	}
	return nil
}

// viewArgs are show's and list's flags and arguments.
type viewArgs struct {
	output, state, provider string
	args                    []string
}

// parseView reads show's and list's flags, which may come before or after
// the arguments (tokenctl show 11 -o json).
func parseView(cmd string, args []string, defaultOutput string, stderr io.Writer) (viewArgs, error) {
	fs := flag.NewFlagSet("tokenctl "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {}
	output := fs.String("o", defaultOutput, "output: table or json")
	state := fs.String("state", "", "list: failing, expired or due")
	prov := fs.String("provider", "", "list: a provider kind (ajio) or integration type (16)")
	var rest []string
	for {
		if err := fs.Parse(args); err != nil {
			return viewArgs{}, fmt.Errorf("%s: %w", cmd, err)
		}
		if fs.NArg() == 0 {
			break
		}
		rest = append(rest, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if *output != "table" && *output != "json" {
		return viewArgs{}, fmt.Errorf("-o must be table or json (got %q)", *output)
	}
	return viewArgs{output: *output, state: *state, provider: *prov, args: rest}, nil
}
