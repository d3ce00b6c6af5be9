// Package lambdamain is the start of every Lambda function's main: the
// environment read (api.LoadEnv, s3store.ConfigFromEnv), the S3 store
// connected, the system built (system.New) and the store probed — the
// same assembly `cairn serve` makes over its own store.
package lambdamain

import (
	"context"
	"fmt"
	"os"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdaurl"

	"github.com/cairnlog/cairn/functions/api"
	"github.com/cairnlog/cairn/functions/system"
	"github.com/cairnlog/cairn/infra/objstore/s3store"
)

// Open reads the environment from getenv (os.Getenv), connects to the
// bucket it names, builds the system and probes the store: a container
// whose bucket does not honour conditional writes fails its init rather
// than serving writes the protocol cannot fence. The probe runs once per
// container (the init phase), as System.Probe remembers success.
func Open(ctx context.Context, getenv func(string) string) (api.Env, *system.System, error) {
	env, err := api.LoadEnv(getenv)
	if err != nil {
		return api.Env{}, nil, err
	}
	store, err := s3store.New(ctx, s3store.ConfigFromEnv(getenv))
	if err != nil {
		return api.Env{}, nil, err
	}
	sys, err := system.New(env.System, store)
	if err != nil {
		return api.Env{}, nil, err
	}
	if err := sys.Probe(ctx); err != nil {
		return api.Env{}, nil, fmt.Errorf("store probe: %w", err)
	}
	return env, sys, nil
}

// Must is Open(ctx, os.Getenv) for a main: it exits on an error, which
// fails the container's init.
func Must(ctx context.Context) (api.Env, *system.System) {
	env, sys, err := Open(ctx, os.Getenv)
	if err != nil {
		fmt.Fprintln(os.Stderr, "cairn:", err)
		os.Exit(1)
	}
	return env, sys
}

// ServeURL is the whole main of a Function URL function: the system (Must),
// its HTTP API mounting role's routes, served through lambdaurl (response
// streaming); SIGTERM closes the writers, releasing their leases.
func ServeURL(role api.Role) {
	env, sys := Must(context.Background())
	srv, err := api.New(env.API, sys)
	if err != nil {
		fmt.Fprintln(os.Stderr, "cairn:", err)
		os.Exit(1)
	}
	lambdaurl.Start(srv.Handler(role), lambda.WithEnableSIGTERM(srv.Shutdown))
}
