package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/caliop/relay/config"
	"github.com/caliop/relay/server"
)

// command is one subcommand: its synopsis, its one-line description, the
// positional argument it takes ("" for none) and what it does with the
// loaded configuration.
type command struct {
	name     string
	synopsis string // after "caliop NAME"
	summary  string
	arg      string // e.g. "DOMAIN"; "" when it takes none
	flags    func(fs *flag.FlagSet) *cmdFlags
	run      func(c cmdContext) int
}

// cmdFlags are the flags one command defines besides --config.
type cmdFlags struct {
	json, receive, defaults bool
}

// cmdContext is what a command runs with.
type cmdContext struct {
	cfg    *config.Config
	load   func() (*config.Config, error)
	path   string // --config, "" for the embedded defaults
	arg    string
	flags  *cmdFlags
	stdout io.Writer
	stderr io.Writer
}

// commands, in the order of the usage text.
var commands = []command{
	{name: "serve", synopsis: "[--config FILE]", summary: "run the relay (embedded defaults without --config)", run: runServe},
	{name: "config check", synopsis: "[--config FILE]", summary: "check the configuration as serve would, binding nothing and writing nothing: exit 0, or 2 with each problem", run: runConfigCheck},
	{name: "config show", synopsis: "[--config FILE] [--defaults]", summary: "print the configuration in force as YAML (--defaults: the embedded defaults)", run: runConfigShow,
		flags: func(fs *flag.FlagSet) *cmdFlags {
			f := &cmdFlags{}
			fs.BoolVar(&f.defaults, "defaults", false, "print the embedded defaults")
			return f
		}},
	{name: "mta-sts", synopsis: "[--config FILE] DOMAIN", summary: "show DOMAIN's MTA-STS record, policy and MX hosts; exit 1 when a policy is published but cannot be fetched", arg: "DOMAIN", run: runMTASTS},
	{name: "check", synopsis: "[--config FILE] [--json] DOMAIN", summary: "diagnose DOMAIN as Caliop would deliver to it; exit 0 authenticated, 1 encrypted only, 2 refused", arg: "DOMAIN", run: runCheckCmd,
		flags: func(fs *flag.FlagSet) *cmdFlags {
			f := &cmdFlags{}
			fs.BoolVar(&f.json, "json", false, "print the report as JSON")
			return f
		}},
	{name: "records", synopsis: "[--config FILE]", summary: "print the DNS records to publish for the inbound side (MX, MTA-STS, TLS-RPT, TLSA)", run: runRecords},
	{name: "wkd", synopsis: "[--config FILE] ADDRESS", summary: "show ADDRESS's WKD lookup, key and encryption decision", arg: "ADDRESS", run: runWKD},
	{name: "tlsrpt", synopsis: "--print [--config FILE] DOMAIN | --receive [--config FILE]", summary: "print DOMAIN's pending TLS-RPT report, or take a report mail on stdin (Postfix pipe)", arg: "DOMAIN", run: runTLSRPT,
		flags: func(fs *flag.FlagSet) *cmdFlags {
			f := &cmdFlags{}
			fs.Bool("print", true, "print DOMAIN's pending report")
			fs.BoolVar(&f.receive, "receive", false, "take a report mail on standard input (a Postfix pipe)")
			return f
		}},
	{name: "learned list", synopsis: "[--config FILE] [--json]", summary: "list the destinations' learned TLS policies and what is being learned", run: runLearnedList,
		flags: func(fs *flag.FlagSet) *cmdFlags {
			f := &cmdFlags{}
			fs.BoolVar(&f.json, "json", false, "print JSON")
			return f
		}},
	{name: "learned show", synopsis: "[--config FILE] DOMAIN", summary: "show what DOMAIN's deliveries taught and what it requires; exit 1 when nothing was learned", arg: "DOMAIN", run: runLearnedShow},
	{name: "learned forget", synopsis: "[--config FILE] DOMAIN", summary: "forget DOMAIN's learned policy (a running relay drops it within a minute); learning starts over", arg: "DOMAIN", run: runLearnedForget},
	{name: "healthcheck", synopsis: "[--config FILE]", summary: "exit 0 when the running relay is ready (/readyz)", run: runHealthcheck},
	{name: "version", summary: "print the version"},
	{name: "help", synopsis: "[COMMAND]", summary: "print this help, or a command's"},
}

// usage is the whole help text.
func usage() string {
	var b strings.Builder
	b.WriteString("usage: caliop COMMAND [flags] [argument]\n\ncommands:\n")
	for _, c := range commands {
		fmt.Fprintf(&b, "  %-14s %s\n", c.name, c.summary)
	}
	b.WriteString("\nFlags take one or two dashes (--config FILE). \"caliop COMMAND --help\" shows a\ncommand's usage. Exit status 2 means a usage or configuration error, reported\non standard error (\"caliop: ...\").\n")
	return b.String()
}

// commandUsage is one command's help text.
func commandUsage(c command) string {
	return fmt.Sprintf("usage: caliop %s %s\n\n%s\n", c.name, c.synopsis, c.summary)
}

// isHelp reports a request for help.
func isHelp(a string) bool { return a == "-h" || a == "--help" || a == "-help" || a == "help" }

// run is the command line: it returns the exit status.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage())
		return 2
	}
	if isHelp(args[0]) {
		if len(args) > 1 {
			if c, _, ok := findCommand(args[1:]); ok {
				fmt.Fprint(stdout, commandUsage(c))
				return 0
			}
			fmt.Fprintf(stderr, "caliop: help: unknown command %q\n\n%s", strings.Join(args[1:], " "), usage())
			return 2
		}
		fmt.Fprint(stdout, usage())
		return 0
	}
	if args[0] == "version" || args[0] == "--version" {
		fmt.Fprintln(stdout, "caliop", version)
		return 0
	}
	c, rest, ok := findCommand(args)
	if !ok {
		fmt.Fprintf(stderr, "caliop: unknown command %q\n\n%s", strings.Join(args[:min(len(args), 2)], " "), usage())
		return 2
	}
	return runCommand(c, rest, stdout, stderr)
}

// findCommand matches the command at the start of args ("config check"
// takes two words) and returns the arguments after it.
func findCommand(args []string) (command, []string, bool) {
	for _, c := range commands {
		words := strings.Fields(c.name)
		if len(args) >= len(words) && strings.Join(args[:len(words)], " ") == c.name {
			return c, args[len(words):], true
		}
	}
	return command{}, nil, false
}

// runCommand parses a command's flags and argument, loads the
// configuration and runs it.
func runCommand(c command, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	path := fs.String("config", "", "configuration file (YAML)")
	f := &cmdFlags{}
	if c.flags != nil {
		f = c.flags(fs)
	}
	pos, err := parseFlags(fs, args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		fmt.Fprint(stdout, commandUsage(c))
		return 0
	case err != nil:
		fmt.Fprintf(stderr, "caliop: %s: %v\n\n%s", c.name, err, commandUsage(c))
		return 2
	}
	wantArg := c.arg != "" && !f.receive
	switch {
	case wantArg && len(pos) == 0:
		fmt.Fprintf(stderr, "caliop: %s: %s missing\n\n%s", c.name, c.arg, commandUsage(c))
		return 2
	case !wantArg && len(pos) > 0 || len(pos) > 1:
		fmt.Fprintf(stderr, "caliop: %s: unexpected argument %q\n\n%s", c.name, pos[len(pos)-1], commandUsage(c))
		return 2
	}
	load := func() (*config.Config, error) { return config.Parse(nil) }
	if *path != "" {
		load = func() (*config.Config, error) { return config.Load(*path) }
	}
	ctx := cmdContext{load: load, path: *path, flags: f, stdout: stdout, stderr: stderr}
	if len(pos) == 1 {
		ctx.arg = pos[0]
	}
	if c.name != "config check" {
		if ctx.cfg, err = load(); err != nil {
			fmt.Fprintln(stderr, "caliop:", err)
			return 2
		}
	}
	return c.run(ctx)
}

// finish reports err (exit 1) or success.
func finish(stderr io.Writer, err error) int {
	if err != nil {
		fmt.Fprintln(stderr, "caliop:", err)
		return 1
	}
	return 0
}

func runServe(c cmdContext) int {
	err := serve(c.cfg, c.load)
	if err != nil {
		fmt.Fprintln(c.stderr, "caliop:", err)
		if errors.As(err, new(server.StartError)) {
			return 2
		}
		return 1
	}
	return 0
}

func runMTASTS(c cmdContext) int { return server.ShowMTASTS(c.cfg, c.arg, c.stdout, c.stderr) }

func runCheckCmd(c cmdContext) int {
	exit, err := server.Check(c.cfg, c.arg, c.flags.json, c.stdout)
	if err != nil {
		fmt.Fprintln(c.stderr, "caliop:", err)
	}
	return exit
}

func runRecords(c cmdContext) int { return finish(c.stderr, server.Records(c.cfg, c.stdout)) }

func runWKD(c cmdContext) int { return finish(c.stderr, server.ShowWKD(c.cfg, c.arg, c.stdout)) }

func runTLSRPT(c cmdContext) int {
	if c.flags.receive {
		code, err := server.ReceiveTLSRPTMail(c.cfg, os.Stdin)
		if err != nil {
			fmt.Fprintln(c.stderr, "caliop:", err)
		}
		return code
	}
	return finish(c.stderr, server.PrintTLSRPT(c.cfg, c.arg, c.stdout))
}

func runLearnedList(c cmdContext) int {
	return finish(c.stderr, server.LearnedList(c.cfg, c.flags.json, c.stdout))
}

func runLearnedShow(c cmdContext) int {
	found, err := server.LearnedShow(c.cfg, c.arg, c.stdout)
	if err == nil && !found {
		return 1
	}
	return finish(c.stderr, err)
}

func runLearnedForget(c cmdContext) int {
	return finish(c.stderr, server.LearnedForget(c.cfg, c.arg, c.stdout))
}

func runHealthcheck(c cmdContext) int { return server.Healthcheck(c.cfg, c.stdout, c.stderr) }

// parseFlags parses flags before and after the positional arguments, so
// that `caliop check DOMAIN --json` works as `caliop check --json DOMAIN`,
// and returns the positional arguments.
func parseFlags(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}
