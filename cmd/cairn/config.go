package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
)

// fileConfig is the config file: the deployment the client commands use
// when no flag or $CAIRN_SERVER names one. It holds no secret (the bearer
// token stays in $CAIRN_TOKEN; AWS credentials in AWS's own files).
type fileConfig struct {
	Server  string `json:"server,omitempty"`
	Stack   string `json:"stack,omitempty"`
	Profile string `json:"profile,omitempty"`
	Region  string `json:"region,omitempty"`
}

// configPath is the config file: os.UserConfigDir()/cairn/config.json
// ($XDG_CONFIG_HOME/cairn/config.json or ~/.config/cairn/config.json on
// Linux, ~/Library/Application Support/cairn/config.json on macOS).
func configPath() (string, error) {
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("config file: %w", err)
	}
	return filepath.Join(dir, "cairn", "config.json"), nil
}

// loadConfig reads the config file; a missing one is the zero config.
func loadConfig() (fileConfig, string, error) {
	path, err := configPath()
	if err != nil {
		return fileConfig{}, "", err
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return fileConfig{}, path, nil
	}
	if err != nil {
		return fileConfig{}, path, err
	}
	var fc fileConfig
	if err := json.Unmarshal(b, &fc); err != nil {
		return fileConfig{}, path, fmt.Errorf("%s: %w", path, err)
	}
	if fc.Server != "" && fc.Stack != "" {
		return fileConfig{}, path, fmt.Errorf("%s: names both a server and a stack", path)
	}
	return fc, path, nil
}

func newConfigCmd() *cobra.Command {
	var server string
	var clear bool
	cmd := &cobra.Command{
		Use:   "config [--stack NAME [--profile P] [--region R] | --server URL | --clear]",
		Short: "Save the deployment the client commands use by default",
		Long: `Saves the deployment that the client commands talk to when neither
--server, --stack nor $CAIRN_SERVER names one: a stack (with the profile
and region to reach it) or a server URL. Without flags it prints the file.
--clear removes it. The file is os.UserConfigDir()/cairn/config.json
(~/.config/cairn/config.json on Linux, or $XDG_CONFIG_HOME/cairn/...); it
holds no secret.`,
		Example: `  cairn config --stack cairn-prod --region eu-west-1
  cairn config --server http://127.0.0.1:7070
  cairn config`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			path, err := configPath()
			if err != nil {
				return err
			}
			fc := fileConfig{Server: server, Stack: deployFlag(cmd, "stack"),
				Profile: deployFlag(cmd, "profile"), Region: deployFlag(cmd, "region")}
			w := cmd.OutOrStdout()
			switch {
			case clear:
				if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
					return err
				}
				fmt.Fprintf(w, "removed %s\n", path)
				return nil
			case fc == fileConfig{}:
				cur, _, err := loadConfig()
				if err != nil {
					return err
				}
				if cur == (fileConfig{}) {
					fmt.Fprintf(w, "no config at %s: the commands talk to %s\n", path, defaultServer)
					return nil
				}
				b, _ := json.MarshalIndent(cur, "", "  ")
				fmt.Fprintf(w, "%s:\n%s\n", path, b)
				return nil
			case fc.Server != "" && fc.Stack != "":
				return errors.New("--server and --stack both name a deployment: give one")
			case fc.Server == "" && fc.Stack == "":
				return errors.New("--profile and --region go with --stack (or --server)")
			}
			if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
				return err
			}
			b, _ := json.MarshalIndent(fc, "", "  ")
			if err := os.WriteFile(path, append(b, '\n'), 0o600); err != nil {
				return err
			}
			fmt.Fprintf(w, "wrote %s\n", path)
			return nil
		},
	}
	cmd.Flags().StringVar(&server, "server", "", "save this server URL (cairn serve) instead of a stack")
	cmd.Flags().BoolVar(&clear, "clear", false, "remove the config file")
	return cmd
}
