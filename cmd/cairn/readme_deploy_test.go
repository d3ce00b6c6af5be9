package main

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// README's "Deploy to AWS" section: its cairn commands run against an
// emulated stack in TestReadmeOnLambda (deployChecks); the names and
// figures it gives of template.yaml are checked here.

// readmeDeploy returns the section's cairn commands
// (comments left out), and the one stack name they use; it fails unless
// the section's first block deploys with `sam build` and `sam deploy
// --guided`.
func readmeDeploy(t *testing.T) (stack string, commands []string) {
	t.Helper()
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := shBlocks(t, string(readme), "Deploy to AWS")
	if len(blocks) != 2 {
		t.Fatalf("Deploy to AWS has %d sh blocks; want 2: deploying, then cairn with --stack", len(blocks))
	}
	for _, cmd := range []string{"sam build", "sam deploy --guided"} {
		if !hasCommand(blocks[0], cmd) {
			t.Errorf("Deploy to AWS does not run `%s`:\n%s", cmd, blocks[0])
		}
	}
	stackFlag := regexp.MustCompile(`--stack (\S+)`)
	for _, line := range commandLines(blocks[1]) {
		line, _, _ = strings.Cut(line, "#")
		line = strings.TrimSpace(line)
		commands = append(commands, line)
		for _, m := range stackFlag.FindAllStringSubmatch(line, -1) {
			if stack != "" && m[1] != stack {
				t.Fatalf("Deploy to AWS names two stacks, %s and %s", stack, m[1])
			}
			stack = m[1]
		}
	}
	if stack == "" {
		t.Fatal("Deploy to AWS names no --stack")
	}
	return stack, commands
}

// deployChecks says what each cairn command of "Deploy to AWS" must print
// against the emulated stack (TestReadmeOnLambda).
var deployChecks = map[string]func(stdout, stderr string) error{
	`cairn --stack cairn --region eu-west-1 vchannel create orders --pchannel p0`: func(out, _ string) error {
		return all(match(out, `(?m)^vchannel +orders$`), match(out, `(?m)^pchannel +p0$`), match(out, `(?m)^state +active$`))
	},
	`printf 'hello\n' | cairn --stack cairn produce --vchannel orders --pchannel p0`: func(out, errOut string) error {
		return all(match(out, `^id:\d+\.\d+ timetick:\d+\n$`),
			match(errOut, `^produced 1 of 1 messages to p0 \(producer go-.+, epoch \d+\)\n$`))
	},
	`cairn config --stack cairn --region eu-west-1 --profile prod`: func(out, _ string) error {
		return match(out, `^wrote \S+/cairn/config\.json\n$`)
	},
	// The saved stack, with the profile's key: p0 holds what the lines
	// above wrote.
	`cairn status`: func(out, _ string) error {
		return all(match(out, `^PCHANNEL `), match(out, `(?m)^p0 `))
	},
}

// TestReadmeDeployMatchesTemplate: what "Deploy to AWS" says of
// template.yaml is so — every parameter it names (a backticked CamelCase
// word) exists, with the range and default it states; the parameters
// without a default, which sam deploy --guided must be given, are named
// in its deploy command; and the build target it names is a function's.
func TestReadmeDeployMatchesTemplate(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, sec, _ := strings.Cut(string(readme), "\n## Deploy to AWS\n")
	sec, _, _ = strings.Cut(sec, "\n## ")
	b, err := os.ReadFile("../../template.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var tmpl struct {
		Parameters map[string]struct {
			Default  *string `yaml:"Default"`
			MinValue string  `yaml:"MinValue"`
			MaxValue string  `yaml:"MaxValue"`
		} `yaml:"Parameters"`
		Resources map[string]struct {
			Type string `yaml:"Type"`
		} `yaml:"Resources"`
	}
	if err := yaml.Unmarshal(b, &tmpl); err != nil {
		t.Fatal(err)
	}

	// CloudFormation's own API names, not the template's.
	awsNames := []string{"DescribeStacks"}
	named := 0
	for _, m := range regexp.MustCompile("`([A-Z][a-z0-9]+(?:[A-Z][A-Za-z0-9]*)+)`").FindAllStringSubmatch(sec, -1) {
		if slices.Contains(awsNames, m[1]) {
			continue
		}
		named++
		if _, ok := tmpl.Parameters[m[1]]; !ok {
			t.Errorf("README names parameter `%s`; template.yaml has no such parameter", m[1])
		}
	}
	if named == 0 {
		t.Error("Deploy to AWS names no parameter: the pattern no longer finds them")
	}
	for _, m := range regexp.MustCompile("`(\\w+)` \\(\\w+, (\\d+) to (\\d+)\\)").FindAllStringSubmatch(sec, -1) {
		p := tmpl.Parameters[m[1]]
		if p.MinValue != m[2] || p.MaxValue != m[3] {
			t.Errorf("README gives `%s` %s to %s; template.yaml MinValue %q, MaxValue %q", m[1], m[2], m[3], p.MinValue, p.MaxValue)
		}
	}
	for _, m := range regexp.MustCompile("parameter `(\\w+)`, default `([^`]+)`").FindAllStringSubmatch(sec, -1) {
		if p := tmpl.Parameters[m[1]]; p.Default == nil || *p.Default != m[2] {
			t.Errorf("README gives `%s` the default %s; template.yaml has another or none", m[1], m[2])
		}
	}
	_, deploy, _ := strings.Cut(sec, "sam deploy --guided")
	deploy, _, _ = strings.Cut(deploy, "\n")
	for name, p := range tmpl.Parameters {
		if p.Default == nil && !strings.Contains(deploy, name) {
			t.Errorf("parameter %s has no default, but README's `sam deploy --guided` line does not ask for it: %q", name, deploy)
		}
	}
	for _, m := range regexp.MustCompile(`make build-(\w+)`).FindAllStringSubmatch(sec, -1) {
		if tmpl.Resources[m[1]].Type != "AWS::Serverless::Function" {
			t.Errorf("README's `make build-%s` names no function of template.yaml", m[1])
		}
	}
}
