package client

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"testing"
	"time"

	"github.com/cairnlog/cairn/functions/api"
	"github.com/cairnlog/cairn/functions/system"
	"github.com/cairnlog/cairn/infra/objstore"
)

// TestRoleOfMatchesRouteTable: for every route of the server's table, the
// SDK sends the request to the function whose role serves it (and the
// routes of every function to the node). A route added to the table with
// a role the SDK does not know fails here.
func TestRoleOfMatchesRouteTable(t *testing.T) {
	srv, err := newAPIServer(system.Config{Holder: "roles", LeaseTTL: 4 * time.Second, CacheBytes: 1 << 20,
		Logger: slog.New(slog.DiscardHandler)}, objstore.NewMemory())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close(context.Background())
	want := map[api.Role]role{0: roleNode, api.RoleNode: roleNode, api.RoleCoordinator: roleCoordinator, api.RoleSnapshot: roleSnapshot}
	wildcard := regexp.MustCompile(`\{[a-z]+\}`)
	n := 0
	for _, rt := range srv.Routes() {
		w, ok := want[rt.Role]
		if !ok {
			t.Errorf("route %s: role %v unknown to the SDK", rt.Pattern(), rt.Role)
			continue
		}
		// Names that look like route words must not fool it.
		for _, name := range []string{"x", "lease", "flush", "location", "append", "txns"} {
			path := wildcard.ReplaceAllString(rt.Path, name)
			if got := roleOf(path); got != w {
				t.Errorf("route %s (path %s): SDK sends it to role %d, the server serves it at %d", rt.Pattern(), path, got, w)
			}
		}
		n++
	}
	if n < 20 {
		t.Fatalf("only %d routes checked", n)
	}
}

// TestEndpointsRouteCalls: against three servers that each mount one
// role's routes (as the three Function URLs do), a client built with
// NewEndpoints reaches every kind of call; a misrouted call would get the
// other function's 404.
func TestEndpointsRouteCalls(t *testing.T) {
	srv, err := newAPIServer(system.Config{Holder: "endpoints", LeaseTTL: 4 * time.Second, LeaseWait: 300 * time.Millisecond,
		CacheBytes: 1 << 20, TimeTickInterval: -1, Logger: slog.New(slog.DiscardHandler)}, objstore.NewMemory())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close(context.Background()) })
	urls := map[api.Role]string{}
	hits := map[api.Role]int{}
	for _, r := range []api.Role{api.RoleNode, api.RoleCoordinator, api.RoleSnapshot} {
		h := srv.Handler(r)
		hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			hits[r]++ // the client sends one request at a time here
			h.ServeHTTP(w, req)
		}))
		t.Cleanup(hs.Close)
		urls[r] = hs.URL
	}
	c, err := NewEndpoints(Endpoints{Node: urls[api.RoleNode], Coordinator: urls[api.RoleCoordinator] + "/", Snapshot: urls[api.RoleSnapshot]})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if _, err := c.CreateVChannel(ctx, "v0", "p0"); err != nil {
		t.Fatalf("create vchannel: %v", err)
	}
	if _, err := c.AppendVChannel(ctx, "v0", []Message{{Payload: []byte("a")}}, AppendOptions{}); err != nil {
		t.Fatalf("append: %v", err)
	}
	if _, err := c.Tail(ctx, "p0"); err != nil {
		t.Fatalf("tail: %v", err)
	}
	if _, err := c.Locate(ctx, "v0"); err != nil {
		t.Fatalf("locate: %v", err)
	}
	if _, err := c.Leases(ctx); err != nil {
		t.Fatalf("leases: %v", err)
	}
	if _, err := c.Flush(ctx, "p0"); err != nil {
		t.Fatalf("flush: %v", err)
	}
	if _, err := c.Snapshots(ctx, ""); err != nil {
		t.Fatalf("snapshots: %v", err)
	}
	if hits[api.RoleNode] < 2 || hits[api.RoleCoordinator] < 3 || hits[api.RoleSnapshot] < 2 {
		t.Fatalf("requests by function: %v", hits)
	}
	if c.BaseURL() != urls[api.RoleNode] {
		t.Errorf("BaseURL %q, want the node's", c.BaseURL())
	}
}

func TestNewEndpointsNeedsEveryURL(t *testing.T) {
	for _, e := range []Endpoints{
		{Node: "http://a", Coordinator: "http://b"},
		{Node: "http://a", Coordinator: "ftp://b", Snapshot: "http://c"},
		{},
	} {
		if _, err := NewEndpoints(e); !errors.Is(err, ErrInvalid) {
			t.Errorf("%+v: %v, want ErrInvalid", e, err)
		}
	}
}
