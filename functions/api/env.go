package api

import (
	"fmt"
	"log/slog"

	"github.com/cairnlog/cairn/functions/system"
)

// EnvVar documents one environment variable the functions read.
type EnvVar = system.EnvVar

// EnvVars lists every CAIRN_* variable the functions read: the runtime's
// and the store's (system.EnvVars), then the HTTP API's two. template.yaml sets
// each one that is not LocalOnly for every function (a test checks it, and
// that no other CAIRN_* name appears in the code the functions link).
var EnvVars = append(append([]EnvVar(nil), system.EnvVars...),
	EnvVar{Name: "CAIRN_MAX_BODY_BYTES", Doc: "request body limit in bytes (default 2 MiB + 64 KiB)"},
	EnvVar{Name: "CAIRN_MAX_WAIT", Doc: "longest read long-poll and broadcast wait, a Go duration (default 20s; below the function timeout)"},
)

// Env is the configuration LoadEnv reads.
type Env struct {
	System   system.Config
	API      Config
	LogLevel slog.Level
}

// Validate applies the defaults of both configurations and reports values
// they cannot run with (the serve command changes a few fields first).
func (e *Env) Validate() error {
	e.System.EnsureDefaults()
	if err := e.System.Validate(); err != nil {
		return err
	}
	e.API.EnsureDefaults(e.System)
	return e.API.Validate()
}

// LoadEnv reads the functions' configuration but the store's from getenv
// (os.Getenv in main): the system's (system.ConfigFromEnv: the Lambda
// defaults, the logger) and the HTTP API's. Unset variables take the
// defaults of system.Config and Config, applied.
func LoadEnv(getenv func(string) string) (Env, error) {
	var e Env
	env := system.NewEnv(getenv)
	e.System, e.LogLevel = system.ConfigFromEnv(env)
	env.Duration("CAIRN_MAX_WAIT", &e.API.MaxWait)
	env.Bytes("CAIRN_MAX_BODY_BYTES", &e.API.MaxBodyBytes)
	if err := env.Err(); err != nil {
		return Env{}, fmt.Errorf("api: environment: %w", err)
	}
	if err := e.Validate(); err != nil {
		return Env{}, err
	}
	return e, nil
}
