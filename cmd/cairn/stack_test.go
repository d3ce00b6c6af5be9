package main

import (
	"context"
	"errors"
	"fmt"
	"html"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"gopkg.in/yaml.v3"

	"github.com/cairnlog/cairn/client/sigv4/sigv4test"
	"github.com/cairnlog/cairn/functions/api"
	"github.com/cairnlog/cairn/functions/system"
	"github.com/cairnlog/cairn/infra/objstore"
)

// --stack is tested with the real CloudFormation client of aws-sdk-go-v2
// against a fake endpoint (httptest answering DescribeStacks in the query
// protocol's XML), reached through the SDK's own endpoint setting
// ($AWS_ENDPOINT_URL_CLOUDFORMATION, the service's BaseEndpoint). The
// stack's outputs point at three servers, one per role, each checking the
// SigV4 signature of every request as a Function URL with AWS_IAM does.

var stackCreds = aws.Credentials{AccessKeyID: "AKIDSTACKTEST", SecretAccessKey: "stack-test-secret"}

const stackRegion = "eu-west-3"

// roleServers serves one API's routes split by role, each behind SigV4
// checks; it returns each role's URL and counts the requests each
// answered.
type roleServers struct {
	urls map[string]string // output name → URL
	mu   sync.Mutex
	hits map[string]int // output name → verified requests
}

func newRoleServers(t *testing.T) *roleServers {
	t.Helper()
	sys, err := system.New(system.Config{Holder: "stack-test", LeaseTTL: 4 * time.Second, LeaseWait: 300 * time.Millisecond,
		CacheBytes: 4 << 20, TimeTickInterval: -1, Logger: slog.New(slog.DiscardHandler)}, objstore.NewMemory())
	if err != nil {
		t.Fatal(err)
	}
	srv, err := api.New(api.Config{}, sys)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Close(ctx)
	})
	rs := &roleServers{urls: map[string]string{}, hits: map[string]int{}}
	for name, role := range map[string]api.Role{outputNodeURL: api.RoleNode, outputCoordinatorURL: api.RoleCoordinator, outputSnapshotURL: api.RoleSnapshot} {
		h := srv.Handler(role)
		counted := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			rs.mu.Lock()
			rs.hits[name]++
			rs.mu.Unlock()
			h.ServeHTTP(w, r)
		})
		hs := httptest.NewServer(sigv4test.Handler(counted, stackCreds, stackRegion))
		t.Cleanup(hs.Close)
		rs.urls[name] = hs.URL + "/" // Function URLs end in a slash
	}
	return rs
}

func (rs *roleServers) counts() map[string]int {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	out := map[string]int{}
	for k, v := range rs.hits {
		out[k] = v
	}
	return out
}

// fakeCloudFormation answers DescribeStacks for the stacks it holds
// (name → outputs) and records each request's form and Authorization.
type fakeCloudFormation struct {
	mu    sync.Mutex
	calls []url.Values
	auths []string
}

func newFakeCloudFormation(t *testing.T, stacks map[string]map[string]string) (*fakeCloudFormation, string) {
	t.Helper()
	f := &fakeCloudFormation{}
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		form, _ := url.ParseQuery(string(b))
		f.mu.Lock()
		f.calls = append(f.calls, form)
		f.auths = append(f.auths, r.Header.Get("Authorization"))
		f.mu.Unlock()
		w.Header().Set("Content-Type", "text/xml")
		outputs, ok := stacks[form.Get("StackName")]
		if form.Get("Action") != "DescribeStacks" || !ok {
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprintf(w, `<ErrorResponse xmlns="http://cloudformation.amazonaws.com/doc/2010-05-15/"><Error><Type>Sender</Type><Code>ValidationError</Code><Message>Stack with id %s does not exist</Message></Error><RequestId>r1</RequestId></ErrorResponse>`,
				html.EscapeString(form.Get("StackName")))
			return
		}
		var outs strings.Builder
		for k, v := range outputs {
			fmt.Fprintf(&outs, "<member><OutputKey>%s</OutputKey><OutputValue>%s</OutputValue></member>", k, html.EscapeString(v))
		}
		fmt.Fprintf(w, `<DescribeStacksResponse xmlns="http://cloudformation.amazonaws.com/doc/2010-05-15/"><DescribeStacksResult><Stacks><member><StackName>%s</StackName><StackId>arn:aws:cloudformation:%s:123456789012:stack/%s/1</StackId><StackStatus>CREATE_COMPLETE</StackStatus><CreationTime>2026-01-01T00:00:00Z</CreationTime><Outputs>%s</Outputs></member></Stacks></DescribeStacksResult><ResponseMetadata><RequestId>r2</RequestId></ResponseMetadata></DescribeStacksResponse>`,
			html.EscapeString(form.Get("StackName")), stackRegion, html.EscapeString(form.Get("StackName")), outs.String())
	}))
	t.Cleanup(hs.Close)
	return f, hs.URL
}

func (f *fakeCloudFormation) requests() ([]url.Values, []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]url.Values(nil), f.calls...), append([]string(nil), f.auths...)
}

// awsEnv gives the process static credentials and a region through the
// environment (the default chain's first source), points CloudFormation
// at endpoint, and keeps the machine's own AWS and cairn files out.
func awsEnv(t *testing.T, endpoint string) {
	dir := t.TempDir()
	for k, v := range map[string]string{
		"AWS_ACCESS_KEY_ID": stackCreds.AccessKeyID, "AWS_SECRET_ACCESS_KEY": stackCreds.SecretAccessKey,
		"AWS_SESSION_TOKEN": "", "AWS_REGION": stackRegion, "AWS_PROFILE": "", "AWS_DEFAULT_REGION": "",
		"AWS_CONFIG_FILE": filepath.Join(dir, "aws-config"), "AWS_SHARED_CREDENTIALS_FILE": filepath.Join(dir, "aws-credentials"),
		"AWS_EC2_METADATA_DISABLED": "true", "AWS_ENDPOINT_URL_CLOUDFORMATION": endpoint, "AWS_ENDPOINT_URL": "",
		"XDG_CONFIG_HOME": filepath.Join(dir, "config"), "CAIRN_SERVER": "", "CAIRN_TOKEN": "",
	} {
		t.Setenv(k, v)
	}
}

// TestStackFlagReachesDeployment: with --stack, every command reads the
// URLs from the stack's outputs and reaches each role's function, signed.
func TestStackFlagReachesDeployment(t *testing.T) {
	rs := newRoleServers(t)
	cf, endpoint := newFakeCloudFormation(t, map[string]map[string]string{"cairn-test": rs.urls})
	awsEnv(t, endpoint)

	if out, _, err := runCLI(t, "", "--stack", "cairn-test", "vchannel", "create", "v0", "--pchannel", "p0"); err != nil {
		t.Fatalf("vchannel create: %v\n%s", err, out)
	}
	if _, errOut, err := runCLI(t, "a\nb\n", "produce", "--stack", "cairn-test", "--pchannel", "p0", "--vchannel", "v0"); err != nil {
		t.Fatalf("produce: %v\n%s", err, errOut)
	}
	out, errOut, err := runCLI(t, "", "--stack", "cairn-test", "consume", "--pchannel", "p0")
	if err != nil || !strings.Contains(out, " v0 a\n") || !strings.Contains(out, " v0 b\n") {
		t.Fatalf("consume: %v\n%s%s", err, out, errOut)
	}
	if out, _, err := runCLI(t, "", "--stack", "cairn-test", "--region", stackRegion, "snapshot", "list"); err != nil {
		t.Fatalf("snapshot list: %v\n%s", err, out)
	}
	hits := rs.counts()
	for _, name := range []string{outputNodeURL, outputCoordinatorURL, outputSnapshotURL} {
		if hits[name] == 0 {
			t.Errorf("no verified request reached %s (hits %v)", name, hits)
		}
	}
	forms, auths := cf.requests()
	if len(forms) != 4 {
		t.Fatalf("%d DescribeStacks calls, want one per command (4)", len(forms))
	}
	for i, f := range forms {
		if f.Get("Action") != "DescribeStacks" || f.Get("StackName") != "cairn-test" {
			t.Errorf("CloudFormation call %d: %v", i, f)
		}
		if !strings.Contains(auths[i], "Credential="+stackCreds.AccessKeyID+"/") || !strings.Contains(auths[i], "/"+stackRegion+"/cloudformation/aws4_request") {
			t.Errorf("CloudFormation call %d not signed for %s: %q", i, stackRegion, auths[i])
		}
	}
}

// TestStackErrors: an unknown stack, a stack that is not Cairn's, and two
// deployments named at once fail with a clear error and send nothing to
// any function.
func TestStackErrors(t *testing.T) {
	rs := newRoleServers(t)
	_, endpoint := newFakeCloudFormation(t, map[string]map[string]string{
		"other": {"SomeOutput": "x", outputNodeURL: rs.urls[outputNodeURL]},
	})
	awsEnv(t, endpoint)
	_, _, err := runCLI(t, "", "--stack", "nope", "status")
	if err == nil || !strings.Contains(err.Error(), "Stack with id nope does not exist") || !strings.Contains(err.Error(), "--stack nope") {
		t.Errorf("unknown stack: %v", err)
	}
	_, _, err = runCLI(t, "", "--stack", "other", "status")
	if !errors.Is(err, errNoStackOutputs) || !strings.Contains(err.Error(), outputCoordinatorURL) || strings.Contains(err.Error(), outputNodeURL) {
		t.Errorf("stack without Cairn's outputs: %v", err)
	}
	_, _, err = runCLI(t, "", "--stack", "other", "status", "--server", "http://127.0.0.1:1")
	if err == nil || !strings.Contains(err.Error(), "give one") {
		t.Errorf("--stack with --server: %v", err)
	}
	if hits := rs.counts(); len(hits) != 0 {
		t.Errorf("requests reached the functions: %v", hits)
	}
}

// TestConfigFile: cairn config saves a stack (or a server) where
// os.UserConfigDir says; the client commands then use it without flags,
// and flags still win over it.
func TestConfigFile(t *testing.T) {
	rs := newRoleServers(t)
	cf, endpoint := newFakeCloudFormation(t, map[string]map[string]string{"cairn-test": rs.urls})
	awsEnv(t, endpoint)
	path := filepath.Join(os.Getenv("XDG_CONFIG_HOME"), "cairn", "config.json")

	out, _, err := runCLI(t, "", "config")
	if err != nil || !strings.Contains(out, "no config at "+path) {
		t.Fatalf("config without a file: %v %q", err, out)
	}
	if out, _, err := runCLI(t, "", "config", "--stack", "cairn-test", "--region", stackRegion); err != nil || out != "wrote "+path+"\n" {
		t.Fatalf("config --stack: %v %q", err, out)
	}
	b, err := os.ReadFile(path)
	if err != nil || !strings.Contains(string(b), `"stack": "cairn-test"`) || !strings.Contains(string(b), `"region": "`+stackRegion+`"`) {
		t.Fatalf("config file: %v %s", err, b)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("config file mode: %v %v", fi.Mode(), err)
	}
	if out, errOut, err := runCLI(t, "", "status"); err != nil || !strings.Contains(out, "PCHANNEL") {
		t.Fatalf("status through the saved stack: %v\n%s%s", err, out, errOut)
	}
	if forms, _ := cf.requests(); len(forms) != 1 {
		t.Fatalf("%d DescribeStacks calls, want 1", len(forms))
	}
	if rs.counts()[outputCoordinatorURL] != 1 {
		t.Fatalf("status did not reach the coordinator: %v", rs.counts())
	}

	// --server beats the file.
	plain := apiServer(t, "")
	if out, errOut, err := runCLI(t, "", "status", "--server", plain); err != nil || !strings.Contains(out, "PCHANNEL") {
		t.Fatalf("status --server with a saved stack: %v\n%s", err, errOut)
	}
	if forms, _ := cf.requests(); len(forms) != 1 {
		t.Fatalf("--server still read the stack")
	}

	// A saved server.
	if _, _, err := runCLI(t, "", "config", "--server", plain); err != nil {
		t.Fatal(err)
	}
	if out, errOut, err := runCLI(t, "", "vchannel", "create", "v9", "--pchannel", "p1"); err != nil || !strings.Contains(out, "v9") {
		t.Fatalf("vchannel create through the saved server: %v\n%s%s", err, out, errOut)
	}
	if _, _, err := runCLI(t, "", "config", "--profile", "x"); err == nil {
		t.Error("config --profile alone was accepted")
	}
	if out, _, err := runCLI(t, "", "config", "--clear"); err != nil || !strings.Contains(out, "removed") {
		t.Fatalf("config --clear: %v %q", err, out)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("config file still there: %v", err)
	}
}

// TestStackOutputsInTemplate: template.yaml has every output --stack
// reads, each the Function URL of its function.
func TestStackOutputsInTemplate(t *testing.T) {
	b, err := os.ReadFile("../../template.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Outputs map[string]struct {
			Value yaml.Node `yaml:"Value"`
		} `yaml:"Outputs"`
	}
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	for name, fn := range map[string]string{outputNodeURL: "NodeFunction", outputCoordinatorURL: "CoordinatorFunction", outputSnapshotURL: "SnapshotFunction"} {
		o, ok := doc.Outputs[name]
		if !ok {
			t.Errorf("template.yaml has no output %s", name)
			continue
		}
		if o.Value.Tag != "!GetAtt" || o.Value.Value != fn+"Url.FunctionUrl" {
			t.Errorf("output %s is %s %q, want !GetAtt %sUrl.FunctionUrl", name, o.Value.Tag, o.Value.Value, fn)
		}
	}
}
