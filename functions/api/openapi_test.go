package api

import (
	"regexp"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/cairnlog/cairn/infra/objstore"
)

// wildcards finds the wildcards of a route's path: "{p}" and its name.
var wildcards = regexp.MustCompile(`\{([a-z]+)\}`)

// TestOpenAPICoversRoutes walks the registered routes and the document's
// paths: each route is documented, and each documented operation is a
// route.
func TestOpenAPICoversRoutes(t *testing.T) {
	var doc struct {
		OpenAPI string                               `yaml:"openapi"`
		Paths   map[string]map[string]map[string]any `yaml:"paths"`
		// Components are read for their path parameters.
		Components struct {
			Parameters map[string]struct{ Name, In string } `yaml:"parameters"`
		} `yaml:"components"`
	}
	if err := yaml.Unmarshal(OpenAPI(), &doc); err != nil {
		t.Fatalf("openapi.yaml: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("openapi version %q, want 3.x", doc.OpenAPI)
	}
	srv, err := newServer(t, testConfig(t), objstore.NewMemory())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close(t.Context())

	registered := map[string]bool{}
	for _, rt := range srv.Routes() {
		op := strings.ToLower(rt.Method) + " " + rt.Path
		registered[op] = true
		item, ok := doc.Paths[rt.Path]
		if !ok {
			t.Errorf("route %s: path not in openapi.yaml", rt.Pattern())
			continue
		}
		o, ok := item[strings.ToLower(rt.Method)]
		if !ok {
			t.Errorf("route %s: method not in openapi.yaml", rt.Pattern())
			continue
		}
		if _, ok := o["responses"]; !ok {
			t.Errorf("route %s: no responses documented", rt.Pattern())
		}
		// Path parameters are declared, each by a reference to a component
		// parameter of the wildcard's name.
		for _, wildcard := range wildcards.FindAllStringSubmatch(rt.Path, -1) {
			params, _ := o["parameters"].([]any)
			if !slices.ContainsFunc(params, func(p any) bool {
				m, _ := p.(map[string]any)
				ref, _ := m["$ref"].(string)
				c, ok := doc.Components.Parameters[strings.TrimPrefix(ref, "#/components/parameters/")]
				return strings.HasPrefix(ref, "#/components/parameters/") && ok && c.Name == wildcard[1] && c.In == "path"
			}) {
				t.Errorf("route %s: path parameter %s not declared", rt.Pattern(), wildcard[0])
			}
		}
	}
	methods := []string{"get", "put", "post", "delete", "patch", "head", "options", "trace"}
	for path, item := range doc.Paths {
		for m := range item {
			if !slices.Contains(methods, m) {
				continue
			}
			if !registered[m+" "+path] {
				t.Errorf("openapi.yaml documents %s %s, which is no route", strings.ToUpper(m), path)
			}
		}
	}
	if len(registered) < 10 {
		t.Fatalf("only %d routes registered", len(registered))
	}
}

// TestHandlerRoles: each function mounts only its role's routes, plus the
// common ones.
func TestHandlerRoles(t *testing.T) {
	srv, err := newServer(t, testConfig(t), objstore.NewMemory())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close(t.Context())
	cases := []struct {
		role   Role
		method string
		path   string
		want   int
	}{
		{RoleCoordinator, "GET", "/v1/leases", 200},
		{RoleNode, "GET", "/v1/leases", 404},
		{RoleNode, "GET", "/v1/pchannels/p0/tail", 404}, // the pchannel, not the route
		{RoleCoordinator, "GET", "/v1/pchannels/p0/tail", 404},
		{RoleSnapshot, "GET", "/healthz", 200},
		{RoleSnapshot, "GET", "/metrics", 200},
		{RoleSnapshot, "GET", "/v1/openapi.yaml", 200},
		{RoleNode, "DELETE", "/v1/pchannels/p0/tail", 405},
	}
	for _, c := range cases {
		rec := newRecorder()
		srv.Handler(c.role).ServeHTTP(rec, mustRequest(t, c.method, c.path, "", ""))
		if rec.Code != c.want {
			t.Errorf("role %d %s %s: %d, want %d: %s", c.role, c.method, c.path, rec.Code, c.want, rec.Body)
		}
	}
	// A route of another role is a JSON not_found, not the pchannel's.
	rec := newRecorder()
	srv.Handler(RoleCoordinator).ServeHTTP(rec, mustRequest(t, "GET", "/v1/pchannels/p0/tail", "", ""))
	if !strings.Contains(rec.Body.String(), `"code":"not_found"`) {
		t.Errorf("route of another role: %s", rec.Body)
	}
}
