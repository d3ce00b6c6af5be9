package functions_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/cairnlog/cairn/functions/api"
)

// The SAM template is checked here without SAM CLI or cfn-lint: every
// reference resolves, every function is built by a Makefile target and gets
// every variable its code reads, Function URLs need IAM, policies stay on
// the bucket's prefix, and the bucket is private, encrypted and TLS-only.

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

var buildLine = regexp.MustCompile(`^CGO_ENABLED=0 GOOS=linux GOARCH=arm64 \$\(GO\) build -tags lambda\.norpc -trimpath -o \$\(ARTIFACTS_DIR\)/bootstrap \./functions/([a-z]+)\n$`)

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
