package main

import (
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/cairnlog/cairn/infra/lambdaemu"
	"github.com/cairnlog/cairn/infra/lambdaemu/lambdaemutest"
	"github.com/cairnlog/cairn/infra/miniotest"
)

// The README's tour and its "Deploy to AWS" commands run here against an
// emulated stack: the real node, coordinator and snapshot bootstraps in
// infra/lambdaemu, each behind a Function URL with AWS_IAM (IAMAuth), on
// the shared MinIO; a fake CloudFormation endpoint (newFakeCloudFormation)
// answers DescribeStacks with the outputs template.yaml declares; and the
// real cairn binary runs each command with --stack, signing with the test
// credentials its environment (or a profile of its AWS files) holds.

// lambdaRegion is the emulated stack's region: the one the README's
// deploy commands name.
const lambdaRegion = "eu-west-1"

// Two access keys the emulated Function URLs accept: the environment's,
// and the profile "prod" (the README's `cairn config --profile prod`).
var (
	lambdaEnvKey  = [2]string{"AKIDLAMBDAENV", "lambda-env-secret"}
	lambdaProfKey = [2]string{"AKIDLAMBDAPROD", "lambda-prod-secret"}
)

// stackFunctions are the template's functions behind Function URLs, by
// their directory under functions/.
var stackFunctions = map[string]string{"NodeFunction": "node", "CoordinatorFunction": "coordinator", "SnapshotFunction": "snapshot"}

// stackBootstraps are the three bootstraps, built once for the test
// binary at the first test that runs them (TestMain removes them).
var stackBootstraps = func() *lambdaemutest.Bootstraps {
	var pkgs []string
	for _, dir := range stackFunctions {
		pkgs = append(pkgs, "github.com/cairnlog/cairn/functions/"+dir)
	}
	return lambdaemutest.NewBootstraps(".", pkgs...)
}()

// startStack starts the emulated functions of one deployment under a
// prefix of its own on the shared MinIO, with the environment
// template.yaml gives them at its parameters' defaults (so the node writes
// in shared mode), and returns the stack's outputs: every output
// template.yaml declares, the Function URLs pointing at the emulated
// functions. It fails if the template has a Function URL the emulation
// lacks.
func startStack(t *testing.T, name string) map[string]string {
	t.Helper()
	mc := miniotest.Get(t)
	bucket, prefix := "lambda-tour", name+"-"+strings.ToLower(rand.Text()[:8]) // -count=N runs apart
	if _, err := mc.NewStore(t.Context(), bucket, prefix); err != nil {
		t.Fatal(err)
	}
	tmpl := readTemplate(t)
	env := tmpl.functionEnv(t, bucket, prefix)
	user, pass := mc.Credentials()
	env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"], env["CAIRN_S3_ENDPOINT"] = user, pass, mc.Endpoint()
	auth := &lambdaemu.IAMAuth{Region: lambdaRegion, Credentials: map[string]string{
		lambdaEnvKey[0]: lambdaEnvKey[1], lambdaProfKey[0]: lambdaProfKey[1]}}
	urls := map[string]string{}
	for id, dir := range stackFunctions {
		f := lambdaemutest.Start(t, lambdaemu.Config{
			Name: name + "-" + id, Bootstrap: stackBootstraps.Path(t, dir), Env: env, Region: lambdaRegion,
			Timeout: 30 * time.Second, ReservedConcurrency: 2, Auth: auth,
		})
		urls[id] = f.URL() + "/" // Function URLs end in a slash
	}

	// The outputs, by the template's own names and values.
	outputs := map[string]string{}
	for out, o := range tmpl.Outputs {
		v := o.Value.Value
		switch {
		case o.Value.Tag == "!GetAtt" && strings.HasSuffix(v, "Url.FunctionUrl"):
			id := strings.TrimSuffix(v, "Url.FunctionUrl")
			if urls[id] == "" {
				t.Fatalf("template.yaml output %s is the Function URL of %s, which this test does not emulate", out, id)
			}
			outputs[out] = urls[id]
		case o.Value.Tag == "!GetAtt" && strings.HasSuffix(v, ".Arn"):
			outputs[out] = "arn:aws:lambda:" + lambdaRegion + ":" + lambdaemu.AccountID + ":function:" + name + "-" + strings.TrimSuffix(v, ".Arn")
		case o.Value.Tag == "!Ref" && v == "Bucket":
			outputs[out] = bucket
		case o.Value.Tag == "!Ref" && v == "Prefix":
			outputs[out] = prefix
		default:
			outputs[out] = "value of " + v
		}
	}
	return outputs
}

// stackTemplate is what the emulated stack takes from template.yaml.
type stackTemplate struct {
	Parameters map[string]struct {
		Default string `yaml:"Default"`
	} `yaml:"Parameters"`
	Globals struct {
		Function struct {
			Environment struct {
				Variables map[string]yaml.Node `yaml:"Variables"`
			} `yaml:"Environment"`
		} `yaml:"Function"`
	} `yaml:"Globals"`
	Outputs map[string]struct {
		Value yaml.Node `yaml:"Value"`
	} `yaml:"Outputs"`
}

func readTemplate(t *testing.T) stackTemplate {
	t.Helper()
	b, err := os.ReadFile("../../template.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var tmpl stackTemplate
	if err := yaml.Unmarshal(b, &tmpl); err != nil {
		t.Fatal(err)
	}
	return tmpl
}

// functionEnv resolves the functions' variables as CloudFormation would
// with every parameter at its default, but the bucket and the prefix.
func (tmpl stackTemplate) functionEnv(t *testing.T, bucket, prefix string) map[string]string {
	t.Helper()
	param := func(name string) string {
		switch name {
		case "Bucket":
			return bucket
		case "Prefix":
			return prefix
		}
		p, ok := tmpl.Parameters[name]
		if !ok {
			t.Fatalf("template.yaml's function environment refers to %s, which this test cannot resolve", name)
		}
		return p.Default
	}
	env := map[string]string{}
	for k, v := range tmpl.Globals.Function.Environment.Variables {
		switch v.Tag {
		case "!Ref":
			env[k] = param(v.Value)
		case "!Sub":
			env[k] = regexp.MustCompile(`\$\{(\w+)\}`).ReplaceAllStringFunc(v.Value, func(m string) string { return param(m[2 : len(m)-1]) })
		default:
			env[k] = v.Value
		}
	}
	if len(env) == 0 || env["CAIRN_S3_PREFIX"] != prefix {
		t.Fatalf("template.yaml's function environment %v lacks CAIRN_S3_PREFIX", env)
	}
	return env
}

// lambdaCLIEnv is the environment the cairn binary runs in: bin's
// directory first on PATH, the test's access key and region in the
// environment, a profile "prod" with the other key in AWS files of the
// test's own, CloudFormation at endpoint, and no cairn server or config
// of the machine's.
func lambdaCLIEnv(t *testing.T, bin, endpoint string) []string {
	t.Helper()
	dir := t.TempDir()
	awsConfig, awsCreds := filepath.Join(dir, "aws-config"), filepath.Join(dir, "aws-credentials")
	if err := os.WriteFile(awsConfig, []byte("[profile prod]\nregion = "+lambdaRegion+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(awsCreds, []byte(fmt.Sprintf("[prod]\naws_access_key_id = %s\naws_secret_access_key = %s\n", lambdaProfKey[0], lambdaProfKey[1])), 0o600); err != nil {
		t.Fatal(err)
	}
	var env []string
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); !strings.HasPrefix(k, "AWS_") && !strings.HasPrefix(k, "CAIRN_") {
			env = append(env, kv)
		}
	}
	return append(env,
		"PATH="+filepath.Dir(bin)+string(os.PathListSeparator)+os.Getenv("PATH"),
		"AWS_ACCESS_KEY_ID="+lambdaEnvKey[0], "AWS_SECRET_ACCESS_KEY="+lambdaEnvKey[1], "AWS_REGION="+lambdaRegion,
		"AWS_CONFIG_FILE="+awsConfig, "AWS_SHARED_CREDENTIALS_FILE="+awsCreds, "AWS_EC2_METADATA_DISABLED=true",
		"AWS_ENDPOINT_URL_CLOUDFORMATION="+endpoint, "XDG_CONFIG_HOME="+filepath.Join(dir, "config"))
}

// withStack inserts the global flags --stack and --region after every
// cairn command word of a tour line.
func withStack(stack string) func(string) string {
	cairn := regexp.MustCompile(`(^|\|\s*)cairn `)
	return func(line string) string {
		return cairn.ReplaceAllString(line, "${1}cairn --stack "+stack+" --region "+lambdaRegion+" ")
	}
}

// TestReadmeOnLambda runs the README's five-minute tour and its "Deploy to
// AWS" commands with --stack against emulated stacks with IAM auth on:
// every command succeeds, signed by the AWS SDK, and prints what the tour
// says (more loosely where Lambda's shared write mode answers otherwise
// than cairn serve); an unsigned request, and the CLI with a wrong secret,
// get the Function URL's 403.
func TestReadmeOnLambda(t *testing.T) {
	bin := tourCairn(t)
	const tourStack = "cairn-tour"
	deployStack, deployCommands := readmeDeploy(t)
	stacks := map[string]map[string]string{
		tourStack:   startStack(t, tourStack),
		deployStack: startStack(t, deployStack),
	}
	cf, endpoint := newFakeCloudFormation(t, stacks)
	env := lambdaCLIEnv(t, bin, endpoint)

	t.Run("unsigned", func(t *testing.T) {
		for _, name := range []string{outputNodeURL, outputCoordinatorURL, outputSnapshotURL} {
			resp, err := http.Get(stacks[tourStack][name] + "healthz")
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusForbidden || string(b) != `{"Message":"Forbidden"}` {
				t.Errorf("unsigned GET %shealthz: %d %s, want 403 {\"Message\":\"Forbidden\"}", stacks[tourStack][name], resp.StatusCode, b)
			}
		}
		wrong := append(append([]string(nil), env...), "AWS_SECRET_ACCESS_KEY=not-the-secret")
		cmd := exec.Command(bin, "--stack", tourStack, "--region", lambdaRegion, "status")
		cmd.Env = wrong
		out, err := cmd.CombinedOutput()
		if string(out) != "cairn: "+msgForbidden+"\n" || cmd.ProcessState.ExitCode() != exitFailed {
			t.Errorf("status signed with a wrong secret: %v\n%s", err, out)
		}
	})
	t.Run("tour", func(t *testing.T) {
		_, commands := readmeTour(t)
		runTour(t, commands, env, withStack(tourStack), lambdaTourChecks())
	})
	t.Run("deploy", func(t *testing.T) {
		runTour(t, deployCommands, env, func(line string) string { return line }, deployChecks)
		// The saved profile signs the last command; the environment's
		// key every one before.
		forms, auths := cf.requests()
		for i, auth := range auths {
			key := lambdaEnvKey[0]
			if i == len(auths)-1 {
				key = lambdaProfKey[0]
			}
			if !strings.Contains(auth, "Credential="+key+"/") {
				t.Errorf("DescribeStacks %d (%s) signed %q, want by %s", i, forms[i].Get("StackName"), auth, key)
			}
		}
	})
}

// lambdaTourChecks are tourChecks with the lines whose output differs on
// Lambda checked otherwise: no node holds a lease there (the functions
// write in shared mode, under the pchannel's shared term), so the lease
// rows show the shared term's record, not serve's holder of each
// pchannel.
func lambdaTourChecks() map[string]func(stdout, stderr string) error {
	checks := map[string]func(stdout, stderr string) error{}
	for line, check := range tourChecks {
		checks[line] = check
	}
	checks[`cairn pchannel list`] = func(out, _ string) error {
		return match(out, `^PCHANNEL +HOLDER +TERM +LIVE +TAIL +CHECKPOINT +EXPIRES\np0 +\S+ +\d+ +(yes|no) +\d+ +\d+ +\S+\n(p[123] .+\n)*$`)
	}
	checks[`cairn lease describe p0`] = func(out, _ string) error {
		return all(match(out, `(?m)^pchannel +p0$`), match(out, `(?m)^term +\d+$`))
	}
	return checks
}
