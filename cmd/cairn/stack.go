package main

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	"github.com/spf13/cobra"

	"github.com/cairnlog/cairn/client"
	"github.com/cairnlog/cairn/client/sigv4"
)

// The outputs of template.yaml that --stack reads (a test checks the
// template has them).
const (
	outputNodeURL        = "NodeFunctionUrl"
	outputCoordinatorURL = "CoordinatorFunctionUrl"
	outputSnapshotURL    = "SnapshotFunctionUrl"
)

// errNoStackOutputs: the stack lacks the outputs of a Cairn stack.
var errNoStackOutputs = errors.New("not a Cairn stack")

// addDeployFlags adds the global flags that name an AWS deployment to the
// root: the client commands read them (connect), `cairn config` saves them.
func addDeployFlags(root *cobra.Command) {
	f := root.PersistentFlags()
	f.String("stack", "", "name of the deployed CloudFormation stack (sam deploy) whose function URLs to use; signs with AWS SigV4")
	f.String("profile", "", "AWS shared-config profile for --stack and Function URLs (default: $AWS_PROFILE, else the default chain)")
	f.String("region", "", "AWS region of --stack (default: $AWS_REGION, else the profile's)")
	root.Long += `

A deployed stack (sam deploy) is named by --stack NAME, with --profile and
--region for its AWS account: the commands read the stack's function URLs
from its outputs and sign each request with AWS SigV4. 'cairn config'
saves a stack (or a server) as the default. What a command talks to is,
first to last: --server, --stack, $CAIRN_SERVER, the config file, then
` + defaultServer + `.`
}

// deployFlag reads one of the root's deploy flags ("" when unset).
func deployFlag(cmd *cobra.Command, name string) string {
	f := cmd.Flags().Lookup(name)
	if f == nil {
		return ""
	}
	return f.Value.String()
}

// connect builds the client a command talks to: --server, else --stack,
// else $CAIRN_SERVER, else the config file's stack or server, else the
// default server. serverFlag is --server's value, token the bearer token
// of cairn serve.
func connect(cmd *cobra.Command, serverFlag, token string) (*client.Client, error) {
	ctx := cmd.Context()
	stack, profile, region := deployFlag(cmd, "stack"), deployFlag(cmd, "profile"), deployFlag(cmd, "region")
	serverSet := cmd.Flags().Changed("server")
	switch {
	case serverSet && stack != "":
		return nil, errors.New("--server and --stack both name a deployment: give one")
	case serverSet:
		return serverClient(ctx, serverFlag, token, profile, region)
	case stack != "":
		return stackClient(ctx, stack, profile, region)
	case os.Getenv("CAIRN_SERVER") != "":
		return serverClient(ctx, os.Getenv("CAIRN_SERVER"), token, profile, region)
	}
	fc, path, err := loadConfig()
	if err != nil {
		return nil, err
	}
	switch {
	case fc.Stack != "":
		return stackClient(ctx, fc.Stack, or(profile, fc.Profile), or(region, fc.Region))
	case fc.Server != "":
		c, err := serverClient(ctx, fc.Server, token, or(profile, fc.Profile), or(region, fc.Region))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		return c, nil
	}
	return serverClient(ctx, serverFlag, token, profile, region)
}

func or(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// serverClient talks to one URL: with the bearer token, or signed with
// SigV4 when the URL is a Lambda Function URL (it serves one role only).
func serverClient(ctx context.Context, server, token, profile, region string) (*client.Client, error) {
	if u, err := url.Parse(server); err == nil && sigv4.RegionOf(u.Host) != "" {
		s, err := sigv4.Load(ctx, profile, region)
		if err != nil {
			return nil, err
		}
		return client.New(server, s.Option())
	}
	return client.New(server, client.WithToken(token))
}

// stackClient reads the stack's function URLs and signs every request
// with the same AWS configuration.
func stackClient(ctx context.Context, stack, profile, region string) (*client.Client, error) {
	cfg, err := sigv4.LoadConfig(ctx, profile, region)
	if err != nil {
		return nil, err
	}
	eps, err := stackEndpoints(ctx, cfg, stack)
	if err != nil {
		return nil, err
	}
	return client.NewEndpoints(eps, sigv4.New(cfg).Option())
}

// stackEndpoints reads the function URLs from the outputs of a stack
// (CloudFormation DescribeStacks).
func stackEndpoints(ctx context.Context, cfg aws.Config, stack string) (client.Endpoints, error) {
	out, err := cloudformation.NewFromConfig(cfg).DescribeStacks(ctx, &cloudformation.DescribeStacksInput{StackName: aws.String(stack)})
	if err != nil {
		return client.Endpoints{}, fmt.Errorf("--stack %s: %w", stack, err)
	}
	if len(out.Stacks) != 1 {
		return client.Endpoints{}, fmt.Errorf("--stack %s: DescribeStacks answered %d stacks", stack, len(out.Stacks))
	}
	outputs := map[string]string{}
	for _, o := range out.Stacks[0].Outputs {
		outputs[aws.ToString(o.OutputKey)] = aws.ToString(o.OutputValue)
	}
	var missing []string
	for _, k := range []string{outputNodeURL, outputCoordinatorURL, outputSnapshotURL} {
		if outputs[k] == "" {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		return client.Endpoints{}, fmt.Errorf("--stack %s (%s): %w: no output %s", stack,
			out.Stacks[0].StackStatus, errNoStackOutputs, strings.Join(missing, ", "))
	}
	return client.Endpoints{Node: outputs[outputNodeURL], Coordinator: outputs[outputCoordinatorURL], Snapshot: outputs[outputSnapshotURL]}, nil
}
