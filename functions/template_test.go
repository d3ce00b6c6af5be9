package functions_test

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/cairnlog/cairn/functions/api"
	"github.com/cairnlog/cairn/segmentlog"
)

// The SAM template is checked here without SAM CLI: every reference
// resolves, every function is built by a stripped Makefile target and gets
// every variable its code reads, parameter constraints refuse what the code
// refuses, Function URLs need IAM, policies stay on the bucket's prefix
// (with the listing a 404 for a missing slot needs), maintenance runs
// alone, every function logs with a retention, and the bucket is private,
// encrypted and TLS-only. Then the CloudFormation validation engine of
// aws-cdk-lib checks it against the resource schemas (TestTemplateCfnValidate).

const module = "github.com/cairnlog/cairn"

// tmpl is template.yaml as a yaml.v3 node tree, so that the short-form
// tags (!Ref, !GetAtt, !Sub) survive.
type tmpl struct {
	root *yaml.Node // the top mapping
}

func loadTemplate(t *testing.T) tmpl {
	t.Helper()
	b, err := os.ReadFile("../template.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatalf("template.yaml: %v", err)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		t.Fatal("template.yaml is not one mapping")
	}
	return tmpl{root: doc.Content[0]}
}

// get follows a path of mapping keys; nil if absent.
func get(n *yaml.Node, path ...string) *yaml.Node {
	for _, k := range path {
		if n == nil || n.Kind != yaml.MappingNode {
			return nil
		}
		var next *yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == k {
				next = n.Content[i+1]
			}
		}
		n = next
	}
	return n
}

// keys lists a mapping's keys.
func keys(n *yaml.Node) []string {
	var ks []string
	if n != nil && n.Kind == yaml.MappingNode {
		for i := 0; i < len(n.Content); i += 2 {
			ks = append(ks, n.Content[i].Value)
		}
	}
	return ks
}

func scalar(n *yaml.Node) string {
	if n == nil || n.Kind != yaml.ScalarNode {
		return ""
	}
	return n.Value
}

// functions returns the AWS::Serverless::Function resources by logical ID.
func (tp tmpl) functions() map[string]*yaml.Node {
	out := map[string]*yaml.Node{}
	res := get(tp.root, "Resources")
	for _, id := range keys(res) {
		if scalar(get(res, id, "Type")) == "AWS::Serverless::Function" {
			out[id] = get(res, id)
		}
	}
	return out
}

// prop is a function property, falling back to Globals.Function.
func (tp tmpl) prop(fn *yaml.Node, name string) *yaml.Node {
	if n := get(fn, "Properties", name); n != nil {
		return n
	}
	return get(tp.root, "Globals", "Function", name)
}

var pseudoParams = []string{"AWS::AccountId", "AWS::NotificationARNs", "AWS::NoValue", "AWS::Partition",
	"AWS::Region", "AWS::StackId", "AWS::StackName", "AWS::URLSuffix"}

// names returns what !Ref may name, and what !GetAtt may name: the
// declared resources plus those SAM generates (a function's Role, its Url
// with FunctionUrlConfig, one per event).
func (tp tmpl) names() (refs, resources map[string]bool) {
	refs, resources = map[string]bool{}, map[string]bool{}
	for _, p := range keys(get(tp.root, "Parameters")) {
		refs[p] = true
	}
	for _, p := range pseudoParams {
		refs[p] = true
	}
	res := get(tp.root, "Resources")
	for _, id := range keys(res) {
		resources[id] = true
		if scalar(get(res, id, "Type")) == "AWS::Serverless::Function" {
			resources[id+"Role"] = true
			if get(res, id, "Properties", "FunctionUrlConfig") != nil {
				resources[id+"Url"] = true
			}
			for _, ev := range keys(get(res, id, "Properties", "Events")) {
				resources[id+ev] = true
			}
		}
	}
	for r := range resources {
		refs[r] = true
	}
	return refs, resources
}

var subVar = regexp.MustCompile(`\$\{([^}!]*)\}`)

// TestTemplateReferences: every !Ref, !GetAtt and ${} of !Sub (short or
// long form) names a parameter, resource or pseudo-parameter.
func TestTemplateReferences(t *testing.T) {
	tp := loadTemplate(t)
	if v := scalar(get(tp.root, "Transform")); v != "AWS::Serverless-2016-10-31" {
		t.Fatalf("Transform %q", v)
	}
	refs, resources := tp.names()
	checked := 0
	checkGetAtt := func(where, target string) {
		res, _, ok := strings.Cut(target, ".")
		if !ok || !resources[res] {
			t.Errorf("%s: GetAtt %q names no resource", where, target)
		}
		checked++
	}
	checkSub := func(where string, n *yaml.Node) {
		var str *yaml.Node
		locals := map[string]bool{}
		switch n.Kind {
		case yaml.ScalarNode:
			str = n
		case yaml.SequenceNode:
			if len(n.Content) != 2 {
				t.Errorf("%s: Sub list must be [string, variables]", where)
				return
			}
			str = n.Content[0]
			for _, k := range keys(n.Content[1]) {
				locals[k] = true
			}
		}
		for _, m := range subVar.FindAllStringSubmatch(scalar(str), -1) {
			v := m[1]
			switch {
			case locals[v]:
			case strings.Contains(v, "."):
				checkGetAtt(where, v)
			case !refs[v]:
				t.Errorf("%s: ${%s} resolves to nothing", where, v)
			}
			checked++
		}
	}
	var walk func(where string, n *yaml.Node)
	walk = func(where string, n *yaml.Node) {
		switch n.Tag {
		case "!Ref":
			if !refs[n.Value] {
				t.Errorf("%s: !Ref %q names nothing", where, n.Value)
			}
			checked++
		case "!GetAtt":
			if n.Kind == yaml.SequenceNode && len(n.Content) == 2 {
				checkGetAtt(where, n.Content[0].Value+"."+n.Content[1].Value)
			} else {
				checkGetAtt(where, n.Value)
			}
		case "!Sub":
			checkSub(where, n)
		}
		if n.Kind == yaml.MappingNode {
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i].Value, n.Content[i+1]
				switch k {
				case "Ref":
					if !refs[v.Value] {
						t.Errorf("%s: Ref %q names nothing", where, v.Value)
					}
					checked++
				case "Fn::GetAtt":
					if v.Kind == yaml.SequenceNode && len(v.Content) == 2 {
						checkGetAtt(where, v.Content[0].Value+"."+v.Content[1].Value)
					} else {
						checkGetAtt(where, v.Value)
					}
				case "Fn::Sub":
					checkSub(where, v)
				}
				walk(where+"."+k, v)
			}
			return
		}
		for i, c := range n.Content {
			walk(fmt.Sprintf("%s[%d]", where, i), c)
		}
	}
	walk("template", tp.root)
	if checked < 20 {
		t.Fatalf("only %d references checked; the walk is broken", checked)
	}
	// Parameters are used.
	used := map[string]bool{}
	var collect func(n *yaml.Node)
	collect = func(n *yaml.Node) {
		if n.Tag == "!Ref" {
			used[n.Value] = true
		}
		if n.Tag == "!Sub" || n.Tag == "!GetAtt" {
			for _, m := range subVar.FindAllStringSubmatch(n.Value, -1) {
				used[m[1]] = true
			}
		}
		for _, c := range n.Content {
			collect(c)
		}
	}
	collect(tp.root)
	for _, p := range keys(get(tp.root, "Parameters")) {
		if !used[p] {
			t.Errorf("parameter %s is never used", p)
		}
	}
	for _, want := range []string{"BucketName", "Prefix", "LeaseTTL", "CacheBytes"} {
		if get(tp.root, "Parameters", want) == nil {
			t.Errorf("parameter %s missing", want)
		}
	}
}

// makeTargets returns each build-* target's recipe, joined.
func makeTargets(t *testing.T) map[string]string {
	t.Helper()
	b, err := os.ReadFile("../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	var cur string
	for _, line := range strings.Split(string(b), "\n") {
		switch {
		case strings.HasPrefix(line, "\t") && cur != "":
			out[cur] += strings.TrimSpace(line) + "\n"
		case strings.HasPrefix(line, "build-") && strings.Contains(line, ":"):
			cur, _, _ = strings.Cut(line, ":")
			out[cur] = ""
		default:
			cur = ""
		}
	}
	return out
}

var buildLine = regexp.MustCompile(`^CGO_ENABLED=0 GOOS=linux GOARCH=arm64 \$\(GO\) build -tags lambda\.norpc -trimpath -ldflags='-s -w' -o \$\(ARTIFACTS_DIR\)/bootstrap \./functions/([a-z]+)\n$`)

// functionDirs maps each function's logical ID to the functions/ folder
// its Makefile target builds.
func functionDirs(t *testing.T, tp tmpl) map[string]string {
	t.Helper()
	targets := makeTargets(t)
	dirs := map[string]string{}
	for id := range tp.functions() {
		recipe, ok := targets["build-"+id]
		if !ok {
			t.Errorf("%s: no build-%s target in the Makefile", id, id)
			continue
		}
		m := buildLine.FindStringSubmatch(recipe)
		if m == nil {
			t.Errorf("build-%s: recipe %q is not the STYLE.md build line", id, recipe)
			continue
		}
		if _, err := os.Stat(filepath.Join(m[1], "main.go")); err != nil {
			t.Errorf("build-%s builds ./functions/%s, which has no main.go", id, m[1])
		}
		dirs[id] = m[1]
	}
	return dirs
}

// TestTemplateFunctions: runtime, architecture, handler, build method,
// Makefile target, IAM-authenticated URLs and the maintenance schedule.
func TestTemplateFunctions(t *testing.T) {
	tp := loadTemplate(t)
	fns := tp.functions()
	if len(fns) != 4 {
		t.Fatalf("%d functions, want node, coordinator, snapshot, maintenance", len(fns))
	}
	dirs := functionDirs(t, tp)
	for id, fn := range fns {
		if v := scalar(tp.prop(fn, "Runtime")); v != "provided.al2023" {
			t.Errorf("%s: Runtime %q", id, v)
		}
		if a := tp.prop(fn, "Architectures"); a == nil || len(a.Content) != 1 || a.Content[0].Value != "arm64" {
			t.Errorf("%s: Architectures must be [arm64]", id)
		}
		if v := scalar(tp.prop(fn, "Handler")); v != "bootstrap" {
			t.Errorf("%s: Handler %q", id, v)
		}
		if v := scalar(tp.prop(fn, "CodeUri")); v != "." {
			t.Errorf("%s: CodeUri %q", id, v)
		}
		if v := scalar(get(fn, "Metadata", "BuildMethod")); v != "makefile" {
			t.Errorf("%s: Metadata.BuildMethod %q", id, v)
		}
		url := get(fn, "Properties", "FunctionUrlConfig")
		if dirs[id] == "maintenance" {
			if url != nil {
				t.Errorf("%s: the scheduled function needs no URL", id)
			}
			ev := get(fn, "Properties", "Events")
			found := false
			for _, k := range keys(ev) {
				if scalar(get(ev, k, "Type")) == "Schedule" && get(ev, k, "Properties", "Schedule") != nil {
					found = true
				}
			}
			if !found {
				t.Errorf("%s: no Schedule event", id)
			}
			continue
		}
		if url == nil {
			t.Errorf("%s: no FunctionUrlConfig", id)
			continue
		}
		if v := scalar(get(url, "AuthType")); v != "AWS_IAM" {
			t.Errorf("%s: Function URL AuthType %q, want AWS_IAM", id, v)
		}
		if v := scalar(get(url, "InvokeMode")); v != "RESPONSE_STREAM" {
			t.Errorf("%s: InvokeMode %q: lambdaurl streams its responses", id, v)
		}
		out := get(tp.root, "Outputs", id+"Url", "Value")
		if out == nil || out.Tag != "!GetAtt" || out.Value != id+"Url.FunctionUrl" {
			t.Errorf("%s: no output of its URL", id)
		}
	}
}

var cairnVar = regexp.MustCompile(`"(CAIRN_[A-Z0-9_]+)"`)

// TestTemplateEnvironment: every CAIRN_* variable the code linked into a
// function names is set for it by the template (or documented LocalOnly),
// api.EnvVars documents them all, and the template sets nothing unused.
func TestTemplateEnvironment(t *testing.T) {
	tp := loadTemplate(t)
	localOnly := map[string]bool{}
	documented := map[string]bool{}
	for _, v := range api.EnvVars {
		documented[v.Name] = true
		localOnly[v.Name] = v.LocalOnly
	}
	for id, dir := range functionDirs(t, tp) {
		out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}} {{.Dir}} {{join .GoFiles \" \"}}{{end}}", "./"+dir).CombinedOutput()
		if err != nil {
			t.Fatalf("go list ./functions/%s: %v\n%s", dir, err, out)
		}
		read := map[string]string{} // variable → file
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			f := strings.Fields(line)
			if len(f) < 2 || !strings.HasPrefix(f[0], module) {
				continue
			}
			for _, name := range f[2:] {
				b, err := os.ReadFile(filepath.Join(f[1], name))
				if err != nil {
					t.Fatal(err)
				}
				for _, m := range cairnVar.FindAllStringSubmatch(string(b), -1) {
					read[m[1]] = filepath.Join(f[0], name)
				}
			}
		}
		if len(read) == 0 {
			t.Fatalf("%s: found no CAIRN_* variable in its code; the scan is broken", id)
		}
		set := map[string]bool{}
		for _, vars := range []*yaml.Node{
			get(tp.root, "Globals", "Function", "Environment", "Variables"),
			get(tp.functions()[id], "Properties", "Environment", "Variables"),
		} {
			for _, k := range keys(vars) {
				set[k] = true
			}
		}
		for v, file := range read {
			if !documented[v] {
				t.Errorf("%s: %s reads %s, which api.EnvVars does not document", id, file, v)
			}
			if !set[v] && !localOnly[v] {
				t.Errorf("%s: reads %s (%s), which the template does not set", id, v, file)
			}
		}
		for v := range set {
			if _, ok := read[v]; !ok {
				t.Errorf("%s: the template sets %s, which its code never reads", id, v)
			}
		}
	}
}

// TestTemplateBucketAndPolicies: the bucket is private, encrypted,
// TLS-only and sweeps aborted uploads; function policies allow only object
// reads, writes and deletes and listing, on the deployment's prefix.
func TestTemplateBucketAndPolicies(t *testing.T) {
	tp := loadTemplate(t)
	res := get(tp.root, "Resources")
	var bucket, policy string
	for _, id := range keys(res) {
		switch scalar(get(res, id, "Type")) {
		case "AWS::S3::Bucket":
			bucket = id
		case "AWS::S3::BucketPolicy":
			policy = id
		}
	}
	if bucket == "" || policy == "" {
		t.Fatalf("bucket %q, bucket policy %q", bucket, policy)
	}
	b := get(res, bucket, "Properties")
	for _, k := range []string{"BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"} {
		if scalar(get(b, "PublicAccessBlockConfiguration", k)) != "true" {
			t.Errorf("bucket: PublicAccessBlockConfiguration.%s is not true", k)
		}
	}
	if sse := get(b, "BucketEncryption", "ServerSideEncryptionConfiguration"); sse == nil || len(sse.Content) == 0 ||
		scalar(get(sse.Content[0], "ServerSideEncryptionByDefault", "SSEAlgorithm")) == "" {
		t.Error("bucket: no default server-side encryption")
	}
	rules := get(b, "LifecycleConfiguration", "Rules")
	if rules == nil || !slices.ContainsFunc(rules.Content, func(r *yaml.Node) bool {
		return get(r, "AbortIncompleteMultipartUpload", "DaysAfterInitiation") != nil && scalar(get(r, "Status")) == "Enabled"
	}) {
		t.Error("bucket: no enabled lifecycle rule for aborted multipart uploads")
	}
	p := get(res, policy, "Properties")
	if ref := get(p, "Bucket"); ref == nil || ref.Tag != "!Ref" || ref.Value != bucket {
		t.Errorf("bucket policy is not on %s", bucket)
	}
	tlsOnly := false
	for _, st := range get(p, "PolicyDocument", "Statement").Content {
		if scalar(get(st, "Effect")) == "Deny" && scalar(get(st, "Principal")) == "*" &&
			scalar(get(st, "Condition", "Bool", "aws:SecureTransport")) == "false" && len(get(st, "Resource").Content) == 2 {
			tlsOnly = true
		}
	}
	if !tlsOnly {
		t.Error("bucket policy does not deny requests without TLS on the bucket and its objects")
	}

	allowed := []string{"s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:ListBucket"}
	prefixed := regexp.MustCompile(`^\$\{` + bucket + `\.Arn\}/\$\{Prefix\}/`)
	for id, fn := range tp.functions() {
		pols := get(fn, "Properties", "Policies")
		if pols == nil || len(pols.Content) == 0 {
			t.Errorf("%s: no policies", id)
			continue
		}
		for _, pol := range pols.Content {
			sts := get(pol, "Statement")
			if pol.Kind != yaml.MappingNode || sts == nil {
				t.Errorf("%s: policies must be inline statements (no managed templates with wider rights)", id)
				continue
			}
			for _, st := range sts.Content {
				if scalar(get(st, "Effect")) != "Allow" {
					continue
				}
				acts := get(st, "Action")
				var actions []string
				if acts.Kind == yaml.ScalarNode {
					actions = []string{acts.Value}
				}
				for _, a := range acts.Content {
					actions = append(actions, a.Value)
				}
				for _, a := range actions {
					if !slices.Contains(allowed, a) {
						t.Errorf("%s: action %s beyond Get/Put/Delete/List", id, a)
					}
				}
				resNodes := []*yaml.Node{get(st, "Resource")}
				if resNodes[0].Kind == yaml.SequenceNode {
					resNodes = resNodes[0].Content
				}
				for _, r := range resNodes {
					switch {
					case slices.Equal(actions, []string{"s3:ListBucket"}):
						if r.Tag != "!GetAtt" || r.Value != bucket+".Arn" {
							t.Errorf("%s: ListBucket on %s %q, want the bucket", id, r.Tag, r.Value)
						}
						if !strings.HasPrefix(scalar(get(st, "Condition", "StringLike", "s3:prefix")), "${Prefix}/") {
							t.Errorf("%s: ListBucket is not limited to the prefix", id)
						}
					case r.Tag != "!Sub" || !prefixed.MatchString(r.Value):
						t.Errorf("%s: object actions on %s %q, want ${%s.Arn}/${Prefix}/...", id, r.Tag, r.Value, bucket)
					}
				}
			}
		}
	}
}

// TestTemplateWALWriters: every function that appends to the WAL may PUT
// under wal/: the node (appends), the coordinator (vchannel create and
// drop messages, broadcast copies) and maintenance (resumed broadcasts).
// The coordinator once could only read it, so its creates, drops and
// broadcasts failed when deployed.
func TestTemplateWALWriters(t *testing.T) {
	tp := loadTemplate(t)
	fns := tp.functions()
	for _, id := range []string{"NodeFunction", "CoordinatorFunction", "MaintenanceFunction"} {
		fn := fns[id]
		if fn == nil {
			t.Fatalf("no %s", id)
		}
		var ok bool
		for _, pol := range get(fn, "Properties", "Policies").Content {
			for _, st := range get(pol, "Statement").Content {
				acts := get(st, "Action")
				puts := acts.Value == "s3:PutObject"
				for _, a := range acts.Content {
					puts = puts || a.Value == "s3:PutObject"
				}
				res := []*yaml.Node{get(st, "Resource")}
				if res[0].Kind == yaml.SequenceNode {
					res = res[0].Content
				}
				for _, r := range res {
					if puts && (strings.HasSuffix(r.Value, "/${Prefix}/wal/*") || strings.HasSuffix(r.Value, "/${Prefix}/*")) {
						ok = true
					}
				}
			}
		}
		if !ok {
			t.Errorf("%s may not PutObject under ${Prefix}/wal/", id)
		}
	}
}

// paramAccepts says whether CloudFormation takes value for the parameter:
// a Number within MinValue..MaxValue, a String matching AllowedPattern
// whole, and one of AllowedValues when listed.
func (tp tmpl) paramAccepts(t *testing.T, name, value string) bool {
	t.Helper()
	p := get(tp.root, "Parameters", name)
	if p == nil {
		t.Fatalf("no parameter %s", name)
	}
	if av := get(p, "AllowedValues"); av != nil && !slices.ContainsFunc(av.Content, func(n *yaml.Node) bool { return n.Value == value }) {
		return false
	}
	switch scalar(get(p, "Type")) {
	case "Number":
		v, err := strconv.ParseFloat(value, 64)
		if err != nil {
			return false
		}
		if m := scalar(get(p, "MinValue")); m != "" && v < mustFloat(t, m) {
			return false
		}
		if m := scalar(get(p, "MaxValue")); m != "" && v > mustFloat(t, m) {
			return false
		}
		return true
	case "String":
		if pat := scalar(get(p, "AllowedPattern")); pat != "" {
			return regexp.MustCompile("^(?:" + pat + ")$").MatchString(value)
		}
		return true
	}
	t.Fatalf("parameter %s: type %q", name, scalar(get(p, "Type")))
	return false
}

func mustFloat(t *testing.T, s string) float64 {
	t.Helper()
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// functionEnv is the environment the template gives every function, with
// the parameters at their defaults except those in set, resources named
// by their logical IDs.
func (tp tmpl) functionEnv(t *testing.T, set map[string]string) map[string]string {
	t.Helper()
	params := map[string]string{}
	for _, p := range keys(get(tp.root, "Parameters")) {
		params[p] = scalar(get(tp.root, "Parameters", p, "Default"))
	}
	for k, v := range set {
		params[k] = v
	}
	env := map[string]string{}
	vars := get(tp.root, "Globals", "Function", "Environment", "Variables")
	for _, k := range keys(vars) {
		n := get(vars, k)
		switch n.Tag {
		case "!Ref":
			v, ok := params[n.Value]
			if !ok {
				v = n.Value // a resource: its name does not matter here
			}
			env[k] = v
		case "!Sub":
			env[k] = subVar.ReplaceAllStringFunc(n.Value, func(m string) string { return params[m[2:len(m)-1]] })
		default:
			env[k] = n.Value
		}
	}
	return env
}

// codeAccepts says whether a function starts with env: api.LoadEnv, the
// code every function runs at a cold start, and its Config.Validate.
func codeAccepts(env map[string]string) error {
	_, err := api.LoadEnv(func(k string) string { return env[k] })
	return err
}

// TestTemplateLeaseParameters: the lease parameters' own constraints
// refuse what the code refuses, so a bad value fails `sam deploy` instead
// of every cold start. Every accepted TTL works with every accepted
// margin (CloudFormation cannot check the two together), and each table
// value is judged the same way by the constraints and, at the other
// parameters' defaults, by the code.
func TestTemplateLeaseParameters(t *testing.T) {
	tp := loadTemplate(t)
	for _, tc := range []struct {
		param, value string
		want         bool
	}{
		{"LeaseTTL", "10", true},
		{"LeaseTTL", "6", true},
		{"LeaseTTL", "1796", true},
		{"LeaseTTL", "60.5", true},
		{"LeaseTTL", "5", false},    // renewals do not fit in TTL - margin
		{"LeaseTTL", "1797", false}, // 2 x TTL + 3 x PUT timeout + margin > the GC min age
		{"LeaseTTL", "-10", false},
		{"LeaseTTL", "999m", false}, // once crashed every cold start
		{"LeaseTTL", "10s", false},
		{"LeaseTTL", "ten", false},
		{"LeaseMargin", "2500", true},
		{"LeaseMargin", "500", true},
		{"LeaseMargin", "3000", true},
		{"LeaseMargin", "2500ms", false},
		{"LeaseMargin", "999m", false},
		{"LeaseMargin", "10000", false}, // above the default TTL
	} {
		accepted := tp.paramAccepts(t, tc.param, tc.value)
		if accepted != tc.want {
			t.Errorf("%s=%s: the template's constraints accept it: %v, want %v", tc.param, tc.value, accepted, tc.want)
		}
		err := codeAccepts(tp.functionEnv(t, map[string]string{tc.param: tc.value}))
		if (err == nil) != tc.want {
			t.Errorf("%s=%s: the code accepts it: %v (%v), want %v", tc.param, tc.value, err == nil, err, tc.want)
		}
	}
	for _, ttl := range []string{"6", "7", "10", "300", "1796"} {
		for _, margin := range []string{"500", "501", "1000", "2500", "2999", "3000"} {
			if !tp.paramAccepts(t, "LeaseTTL", ttl) || !tp.paramAccepts(t, "LeaseMargin", margin) {
				t.Fatalf("TTL %s, margin %s: not accepted by the constraints", ttl, margin)
			}
			if err := codeAccepts(tp.functionEnv(t, map[string]string{"LeaseTTL": ttl, "LeaseMargin": margin})); err != nil {
				t.Errorf("LeaseTTL=%s LeaseMargin=%s: both accepted by the template, refused by the code: %v", ttl, margin, err)
			}
		}
	}
	// The other duration parameters: what their pattern takes, the code
	// takes.
	for _, p := range keys(get(tp.root, "Parameters")) {
		if scalar(get(tp.root, "Parameters", p, "AllowedPattern")) == "" || !strings.Contains(scalar(get(tp.root, "Parameters", p, "Description")), "Go duration") {
			continue
		}
		for _, v := range []string{"0s", "10s", "2500ms", "999999m", "9999999999m", "99999999999999999999ms", "1.5s", "-1s", "1h"} {
			if !tp.paramAccepts(t, p, v) {
				continue
			}
			if err := codeAccepts(tp.functionEnv(t, map[string]string{p: v})); err != nil && !strings.Contains(err.Error(), "max") {
				t.Errorf("%s=%s: accepted by the template, refused by the code: %v", p, v, err)
			}
		}
	}
}

// TestTemplateMaintenanceRunsAlone: a maintenance round never overlaps
// another (reserved concurrency 1: a round due while one runs is
// throttled), and neither Lambda's async invoke nor the schedule retries
// a failed round blindly (the next round redoes the work).
func TestTemplateMaintenanceRunsAlone(t *testing.T) {
	tp := loadTemplate(t)
	fn := tp.functions()["MaintenanceFunction"]
	if fn == nil {
		t.Fatal("no MaintenanceFunction")
	}
	if v := scalar(get(fn, "Properties", "ReservedConcurrentExecutions")); v != "1" {
		t.Errorf("ReservedConcurrentExecutions %q, want 1", v)
	}
	if v := scalar(get(fn, "Properties", "EventInvokeConfig", "MaximumRetryAttempts")); v != "0" {
		t.Errorf("EventInvokeConfig.MaximumRetryAttempts %q, want 0", v)
	}
	if v := scalar(get(fn, "Properties", "EventInvokeConfig", "MaximumEventAgeInSeconds")); v == "" {
		t.Error("no EventInvokeConfig.MaximumEventAgeInSeconds: a throttled round would wait up to 6 h")
	}
	ev := get(fn, "Properties", "Events")
	for _, k := range keys(ev) {
		if scalar(get(ev, k, "Type")) == "Schedule" && scalar(get(ev, k, "Properties", "RetryPolicy", "MaximumRetryAttempts")) != "0" {
			t.Errorf("schedule %s: RetryPolicy.MaximumRetryAttempts is not 0", k)
		}
	}
}

// TestTemplateConcurrencyAndLogs: the node's reserved concurrency is a
// documented parameter (0: none), and every function logs to a log group
// of its own with a retention.
func TestTemplateConcurrencyAndLogs(t *testing.T) {
	tp := loadTemplate(t)
	node := tp.functions()["NodeFunction"]
	rc := get(node, "Properties", "ReservedConcurrentExecutions")
	if rc == nil || rc.Tag != "!If" || len(rc.Content) != 3 || rc.Content[0].Value != "ReserveNodeConcurrency" ||
		rc.Content[1].Tag != "!Ref" || rc.Content[1].Value != "NodeConcurrency" || rc.Content[2].Value != "AWS::NoValue" {
		t.Error("NodeFunction: ReservedConcurrentExecutions must be !If [ReserveNodeConcurrency, !Ref NodeConcurrency, !Ref AWS::NoValue]")
	}
	if get(tp.root, "Conditions", "ReserveNodeConcurrency") == nil {
		t.Error("no condition ReserveNodeConcurrency")
	}
	if d := scalar(get(tp.root, "Parameters", "NodeConcurrency", "Description")); !strings.Contains(d, "0 for none") {
		t.Errorf("NodeConcurrency is not documented: %q", d)
	}
	res := get(tp.root, "Resources")
	used := map[string]string{}
	for id, fn := range tp.functions() {
		lg := get(fn, "Properties", "LoggingConfig", "LogGroup")
		if lg == nil || lg.Tag != "!Ref" {
			t.Errorf("%s: LoggingConfig.LogGroup is not a !Ref to a log group", id)
			continue
		}
		if scalar(get(res, lg.Value, "Type")) != "AWS::Logs::LogGroup" {
			t.Errorf("%s: logs to %s, not an AWS::Logs::LogGroup", id, lg.Value)
		}
		if r := get(res, lg.Value, "Properties", "RetentionInDays"); r == nil {
			t.Errorf("%s: log group %s keeps logs forever", id, lg.Value)
		}
		if other, ok := used[lg.Value]; ok {
			t.Errorf("%s and %s share log group %s", id, other, lg.Value)
		}
		used[lg.Value] = id
	}
}

// TestTemplateOutputs: the stack outputs every function's ARN and URL
// (those cairn --stack reads: cmd/cairn checks its names against this
// template), the bucket and the prefix.
func TestTemplateOutputs(t *testing.T) {
	tp := loadTemplate(t)
	outs := get(tp.root, "Outputs")
	for id, fn := range tp.functions() {
		if o := get(outs, id+"Arn", "Value"); o == nil || o.Tag != "!GetAtt" || o.Value != id+".Arn" {
			t.Errorf("no output %sArn = !GetAtt %s.Arn", id, id)
		}
		if get(fn, "Properties", "FunctionUrlConfig") != nil {
			if o := get(outs, id+"Url", "Value"); o == nil || o.Value != id+"Url.FunctionUrl" {
				t.Errorf("no output %sUrl", id)
			}
		}
	}
	for name, want := range map[string]string{"BucketName": "Bucket", "Prefix": "Prefix"} {
		if o := get(outs, name, "Value"); o == nil || o.Tag != "!Ref" || o.Value != want {
			t.Errorf("no output %s = !Ref %s", name, want)
		}
	}
}

// globMatch is IAM's StringLike: * any run of characters, ? one.
func globMatch(pattern, s string) bool {
	re := regexp.QuoteMeta(pattern)
	re = strings.NewReplacer(`\*`, ".*", `\?`, ".").Replace(re)
	return regexp.MustCompile("^" + re + "$").MatchString(s)
}

// TestTemplateMissingSlotIs404: a GET or HEAD of a WAL slot that does not
// exist must answer 404, since a reader and an appender tell "the slot is
// free" from "forbidden" by it. S3 answers 404 for a missing key only to a
// caller that also has s3:ListBucket on the bucket; without it, 403
// AccessDenied (Amazon S3 API Reference, HeadObject and GetObject,
// "Permissions": "If the object you request doesn't exist, the error that
// Amazon S3 returns depends on whether you also have the s3:ListBucket
// permission"). S3 judges that ListBucket with the requested key as the
// s3:prefix condition key, so a grant limited to "${Prefix}/*" covers it
// (the behaviour Ceph RGW matched in ceph/ceph#68577 "consults s3:prefix
// when deciding between 403/404"). So every function that reads WAL slots
// has s3:ListBucket on the bucket, limited by s3:prefix to the
// deployment's prefix, and that prefix matches a real slot key.
func TestTemplateMissingSlotIs404(t *testing.T) {
	tp := loadTemplate(t)
	prefix := scalar(get(tp.root, "Parameters", "Prefix", "Default"))
	slot := segmentlog.Layout{Prefix: prefix}.WAL("p0", 42)
	for id, fn := range tp.functions() {
		readsWAL, lists := false, false
		for _, pol := range get(fn, "Properties", "Policies").Content {
			for _, st := range get(pol, "Statement").Content {
				if scalar(get(st, "Effect")) != "Allow" {
					continue
				}
				acts := []string{scalar(get(st, "Action"))}
				for _, a := range get(st, "Action").Content {
					acts = append(acts, a.Value)
				}
				resNodes := []*yaml.Node{get(st, "Resource")}
				if resNodes[0].Kind == yaml.SequenceNode {
					resNodes = resNodes[0].Content
				}
				if slices.Contains(acts, "s3:GetObject") {
					for _, r := range resNodes {
						key, ok := strings.CutPrefix(r.Value, "${Bucket.Arn}/")
						if ok && globMatch(strings.ReplaceAll(key, "${Prefix}", prefix), slot) {
							readsWAL = true
						}
					}
				}
				if slices.Contains(acts, "s3:ListBucket") {
					cond := scalar(get(st, "Condition", "StringLike", "s3:prefix"))
					if cond == "" {
						t.Errorf("%s: s3:ListBucket without an s3:prefix condition lists the whole bucket", id)
						continue
					}
					if globMatch(strings.ReplaceAll(cond, "${Prefix}", prefix), slot) {
						lists = true
					}
				}
			}
		}
		if readsWAL && !lists {
			t.Errorf("%s reads WAL slots (%s) without s3:ListBucket covering them: a missing slot answers 403, not 404", id, slot)
		}
		if !readsWAL && id != "SnapshotFunction" {
			t.Errorf("%s: expected to read WAL slots", id)
		}
	}
	// The bucket policy denies nothing to the functions over TLS.
	for _, st := range get(tp.root, "Resources", "BucketPolicy", "Properties", "PolicyDocument", "Statement").Content {
		if scalar(get(st, "Effect")) == "Deny" && get(st, "Condition") == nil {
			t.Errorf("bucket policy statement %s denies without a condition", scalar(get(st, "Sid")))
		}
	}
}

// cfnlintDir holds the second validator: validate.cjs drives the
// CloudFormation validation engine inside aws-cdk-lib, pinned by its
// package-lock.json; `make test` installs it (npm ci).
const cfnlintDir = "testdata/cfnlint"

// runCfnValidate runs validate.cjs over a template file and returns its
// output and whether it found the template valid.
func runCfnValidate(t *testing.T, template string) (string, bool) {
	t.Helper()
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatalf("node not found (%v): the template validation needs Node.js (Debian: apt-get install -y nodejs npm)", err)
	}
	if _, err := os.Stat(filepath.Join(cfnlintDir, "node_modules", "aws-cdk-lib", "package.json")); err != nil {
		t.Fatalf("aws-cdk-lib is not installed (%v): run `make test`, or `npm ci --prefix functions/%s`", err, cfnlintDir)
	}
	abs, err := filepath.Abs(template)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("node", "validate.cjs", abs)
	cmd.Dir = cfnlintDir
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return string(out), true
	case errors.As(err, &exit) && exit.ExitCode() == 1:
		return string(out), false
	}
	t.Fatalf("validate.cjs: %v\n%s", err, out)
	return "", false
}

// TestTemplateCfnValidate: the CloudFormation validation engine of
// aws-cdk-lib finds nothing in template.yaml but SAM's generated Function
// URLs (dropped by name in validate.cjs), and checks the bucket, its
// policy and the log groups in full.
func TestTemplateCfnValidate(t *testing.T) {
	out, ok := runCfnValidate(t, "../template.yaml")
	if !ok {
		t.Fatalf("template.yaml fails CloudFormation validation:\n%s", out)
	}
	for _, want := range []string{"AWS::S3::Bucket x1", "AWS::S3::BucketPolicy x1", "AWS::Logs::LogGroup x4", "dropped 3 known false positive(s)", "template valid"} {
		if !strings.Contains(out, want) {
			t.Errorf("validator output lacks %q:\n%s", want, out)
		}
	}
}

// TestTemplateCfnValidateCatches: the validator fails a template with a
// misspelt property, a reference to no parameter, and a Function URL of
// a function that has none — the false-positive filter goes by name, not
// by the kind of finding.
func TestTemplateCfnValidateCatches(t *testing.T) {
	b, err := os.ReadFile("../template.yaml")
	if err != nil {
		t.Fatal(err)
	}
	src := string(b)
	for _, r := range [][2]string{
		{"BucketKeyEnabled: true", "BucketKeyEnabld: true"},
		{"MemorySize: !Ref NodeMemory", "MemorySize: !Ref NodeMemry"},
		{"\nOutputs:\n", "\nOutputs:\n  Bogus:\n    Value: !GetAtt MaintenanceFunctionUrl.FunctionUrl\n"},
	} {
		if !strings.Contains(src, r[0]) {
			t.Fatalf("template.yaml has no %q to break", r[0])
		}
		src = strings.Replace(src, r[0], r[1], 1)
	}
	broken := filepath.Join(t.TempDir(), "broken.yaml")
	if err := os.WriteFile(broken, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	out, ok := runCfnValidate(t, broken)
	if ok {
		t.Fatalf("the broken template passed:\n%s", out)
	}
	for _, want := range []string{
		"F3002 Bucket: BucketEncryption.ServerSideEncryptionConfiguration.0.BucketKeyEnabld",
		"F1020 NodeFunction: MemorySize: 'NodeMemry'",
		"GetAtt 'MaintenanceFunctionUrl.FunctionUrl' references a resource that does not exist",
		"3 finding(s)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("validator output lacks %q:\n%s", want, out)
		}
	}
}
