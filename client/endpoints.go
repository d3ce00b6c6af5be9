package client

import (
	"fmt"
	"net/url"
	"strings"
)

// Endpoints name a deployment by the URL of each of its functions: the
// node (appends, reads, tail, sync, transactions), the coordinator
// (pchannel status, leases, the vchannel registry, broadcasts) and the
// snapshot function (flush, snapshots, restores). On AWS they are the
// stack's Function URLs (template.yaml, outputs NodeFunctionUrl,
// CoordinatorFunctionUrl and SnapshotFunctionUrl). `cairn serve` serves
// every route at one URL: use New for it, or give the same URL three
// times.
type Endpoints struct {
	Node        string
	Coordinator string
	Snapshot    string
}

// role is the function that serves a route; it mirrors the Role of each
// row of the server's route table (functions/api/routes.go), which a test
// compares with roleOf route by route.
type role uint8

const (
	roleNode role = iota
	roleCoordinator
	roleSnapshot
	nRoles
)

// NewEndpoints returns a client of the deployment e names: each call goes
// to the URL of the function that serves it. Every URL is required and
// checked as New checks its one. It sends no request.
func NewEndpoints(e Endpoints, opts ...Option) (*Client, error) {
	var bases [nRoles]*url.URL
	for r, s := range [nRoles]string{roleNode: e.Node, roleCoordinator: e.Coordinator, roleSnapshot: e.Snapshot} {
		name := [nRoles]string{"node", "coordinator", "snapshot"}[r]
		if s == "" {
			return nil, fmt.Errorf("client: %w: no %s URL in Endpoints", ErrInvalid, name)
		}
		u, err := parseBase(s)
		if err != nil {
			return nil, fmt.Errorf("%w (the %s endpoint)", err, name)
		}
		bases[r] = u
	}
	c, err := New(e.Node, opts...)
	if err != nil {
		return nil, err
	}
	c.bases = &bases
	return c, nil
}

// parseBase checks a server URL: http(s)://host[:port][/prefix], with no
// query or fragment; the trailing slash is dropped.
func parseBase(baseURL string) (*url.URL, error) {
	u, err := url.Parse(baseURL)
	if err != nil {
		return nil, fmt.Errorf("client: server URL %q: %w: %w", baseURL, ErrInvalid, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("client: server URL %q: %w: want http(s)://host[:port][/prefix]", baseURL, ErrInvalid)
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	return u, nil
}

// baseFor is the URL a request to path goes to.
func (c *Client) baseFor(path string) *url.URL {
	if c.bases == nil {
		return c.base
	}
	return c.bases[roleOf(path)]
}

// roleOf says which function serves an API path (escaped, "/v1/..."); the
// method never changes it. Routes every function serves (/healthz,
// /metrics, /v1/openapi.yaml) go to the node.
func roleOf(path string) role {
	seg := strings.Split(strings.TrimPrefix(path, "/"), "/")
	if len(seg) < 2 || seg[0] != "v1" {
		return roleNode
	}
	last := seg[len(seg)-1]
	switch seg[1] {
	case "pchannels":
		switch {
		case len(seg) == 2 || (len(seg) == 4 && last == "lease"):
			return roleCoordinator // the status table, a lease
		case len(seg) == 4 && (last == "flush" || last == "trim" || last == "retention"):
			return roleSnapshot // the checkpoint record
		}
		return roleNode
	case "vchannels":
		if len(seg) <= 3 || (len(seg) == 4 && (last == "location" || last == "trim" || last == "retention")) {
			return roleCoordinator // the registry
		}
		return roleNode // a vchannel's data path and its transactions
	case "leases", "broadcasts":
		return roleCoordinator
	case "snapshots", "restores":
		return roleSnapshot
	}
	return roleNode // txns, openapi.yaml
}
