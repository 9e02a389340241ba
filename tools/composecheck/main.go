// composecheck loads Compose files exactly as `docker compose` does (compose-go: the
// Compose Specification's JSON schema, interpolation, consistency checks) and prints the
// resolved project as JSON, so tests can validate docker-compose.monitoring.yml without a
// Docker engine.
//
// Usage: composecheck FILE [FILE...]   (variables come from the environment)
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/compose-spec/compose-go/v2/cli"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: composecheck FILE [FILE...]")
		os.Exit(2)
	}
	opts, err := cli.NewProjectOptions(os.Args[1:], cli.WithOsEnv, cli.WithName("elk-pipeline"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "invalid:", err)
		os.Exit(1)
	}
	project, err := opts.LoadProject(context.Background())
	if err != nil {
		fmt.Fprintln(os.Stderr, "invalid:", err)
		os.Exit(1)
	}
	out, err := project.MarshalJSON()
	if err != nil {
		fmt.Fprintln(os.Stderr, "cannot render:", err)
		os.Exit(1)
	}
	os.Stdout.Write(out)
}
