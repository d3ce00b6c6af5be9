package api

import (
	_ "embed"
	"net/http"
)

// openAPI is the OpenAPI 3 document of every route (openapi.yaml); a test
// keeps it and the route table equal.
//
//go:embed openapi.yaml
var openAPI []byte

// OpenAPI returns the OpenAPI 3 document of the API.
func OpenAPI() []byte { return append([]byte(nil), openAPI...) }

// routeTable is the API. A new route is one row here, one handler, and its
// entry in openapi.yaml. vchannel routes (/v1/vchannels/...) will join
// RoleCoordinator (registry) and RoleNode (appends and reads by vchannel)
// when the coordinator's registry lands; snapshot routes (/v1/snapshots/...)
// RoleSnapshot.
func (s *Server) routeTable() []Route {
	return []Route{
		// Every function.
		{Method: "GET", Path: "/healthz", handle: s.healthz},
		{Method: "GET", Path: "/metrics", handle: s.metricsHandler()},
		{Method: "GET", Path: "/v1/openapi.yaml", handle: serveOpenAPI},

		// Node: the data path of a pchannel.
		{Method: "POST", Path: "/v1/pchannels/{p}/append", Role: RoleNode, handle: s.handleAppend},
		{Method: "GET", Path: "/v1/pchannels/{p}/messages", Role: RoleNode, handle: s.handleRead},
		{Method: "GET", Path: "/v1/pchannels/{p}/tail", Role: RoleNode, handle: s.handleTail},
		{Method: "POST", Path: "/v1/pchannels/{p}/sync", Role: RoleNode, handle: s.handleSync},

		// Coordinator: leases and status.
		{Method: "GET", Path: "/v1/pchannels", Role: RoleCoordinator, handle: s.handleStatus},
		{Method: "GET", Path: "/v1/pchannels/{p}/lease", Role: RoleCoordinator, handle: s.handleLease},
		{Method: "GET", Path: "/v1/leases", Role: RoleCoordinator, handle: s.handleLeases},
	}
}

func serveOpenAPI(w http.ResponseWriter, _ *http.Request) error {
	w.Header().Set("Content-Type", "application/yaml")
	_, _ = w.Write(openAPI) // a failed write means the client left
	return nil
}
