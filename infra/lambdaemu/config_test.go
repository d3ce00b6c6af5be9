package lambdaemu_test

import (
	"errors"
	"testing"
	"time"

	"github.com/cairnlog/cairn/infra/lambdaemu"
)

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  lambdaemu.Config
	}{
		{"no bootstrap", lambdaemu.Config{}},
		{"negative timeout", lambdaemu.Config{Bootstrap: "b", Timeout: -time.Second}},
		{"negative concurrency", lambdaemu.Config{Bootstrap: "b", ReservedConcurrency: -1}},
		{"unknown reap mode", lambdaemu.Config{Bootstrap: "b", Reap: 7}},
		{"auth without credentials", lambdaemu.Config{Bootstrap: "b", Auth: &lambdaemu.IAMAuth{Region: "us-east-1"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := lambdaemu.Start(tc.cfg); !errors.Is(err, lambdaemu.ErrConfig) {
				t.Fatalf("Start: %v, want ErrConfig", err)
			}
		})
	}
}
