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
// entry in openapi.yaml. A handler that returns its answer is adapted by
// answer (200, JSON); one that answers a named thing, by describe.
func (s *Server) routeTable() []Route {
	return []Route{
		// Every function.
		{Method: "GET", Path: "/healthz", handle: s.healthz},
		{Method: "GET", Path: "/metrics", handle: s.metricsHandler()},
		{Method: "GET", Path: "/v1/openapi.yaml", handle: serveOpenAPI},

		// Node: the data path of a pchannel.
		{Method: "POST", Path: "/v1/pchannels/{p}/append", Role: RoleNode, handle: s.handleAppend},
		{Method: "GET", Path: "/v1/pchannels/{p}/messages", Role: RoleNode, handle: s.handleRead},
		{Method: "GET", Path: "/v1/pchannels/{p}/tail", Role: RoleNode, handle: answer(s.handleTail)},
		{Method: "POST", Path: "/v1/pchannels/{p}/sync", Role: RoleNode, handle: answer(s.handleSync)},

		// Node: the data path by vchannel, and transactions.
		{Method: "POST", Path: "/v1/vchannels/{v}/append", Role: RoleNode, handle: s.handleVChannelAppend},
		{Method: "GET", Path: "/v1/vchannels/{v}/messages", Role: RoleNode, handle: s.handleVChannelRead},
		{Method: "POST", Path: "/v1/vchannels/{v}/txns", Role: RoleNode, handle: answer(s.handleTxnBegin)},
		{Method: "POST", Path: "/v1/txns/{txn}/append", Role: RoleNode, handle: answer(s.handleTxnAppend)},
		{Method: "POST", Path: "/v1/txns/{txn}/commit", Role: RoleNode, handle: answer(s.handleTxnCommit)},
		{Method: "POST", Path: "/v1/txns/{txn}/rollback", Role: RoleNode, handle: s.handleTxnRollback},

		// Coordinator: leases, status, the vchannel registry and broadcasts.
		{Method: "GET", Path: "/v1/pchannels", Role: RoleCoordinator, handle: answer(s.handleStatus)},
		{Method: "GET", Path: "/v1/pchannels/{p}/lease", Role: RoleCoordinator, handle: describe("p", "pchannel", s.lease, s.leaseOut)},
		{Method: "GET", Path: "/v1/leases", Role: RoleCoordinator, handle: answer(s.handleLeases)},
		{Method: "POST", Path: "/v1/vchannels", Role: RoleCoordinator, handle: answer(s.handleVChannelCreate)},
		{Method: "GET", Path: "/v1/vchannels", Role: RoleCoordinator, handle: answer(s.handleVChannelList)},
		{Method: "GET", Path: "/v1/vchannels/{v}", Role: RoleCoordinator, handle: describe("v", "vchannel", s.describeVChannel, asIs)},
		{Method: "DELETE", Path: "/v1/vchannels/{v}", Role: RoleCoordinator, handle: describe("v", "vchannel", s.sys.DropVChannel, vchannelOut)},
		{Method: "GET", Path: "/v1/vchannels/{v}/location", Role: RoleCoordinator, handle: describe("v", "vchannel", s.sys.Registry().Locate, locationOut)},
		{Method: "POST", Path: "/v1/vchannels/{v}/trim", Role: RoleCoordinator, handle: answer(s.handleVChannelTrim)},
		{Method: "PUT", Path: "/v1/vchannels/{v}/retention", Role: RoleCoordinator, handle: answer(s.handleVChannelRetention)},
		{Method: "POST", Path: "/v1/broadcasts", Role: RoleCoordinator, handle: s.handleBroadcast},
		{Method: "GET", Path: "/v1/broadcasts", Role: RoleCoordinator, handle: answer(s.handleBroadcastList)},
		{Method: "GET", Path: "/v1/broadcasts/{id}", Role: RoleCoordinator, handle: describe("id", "broadcast ID", s.sys.Broadcaster().Describe, broadcastOut)},

		// Snapshot: flush, snapshots and restores.
		{Method: "POST", Path: "/v1/pchannels/{p}/flush", Role: RoleSnapshot, handle: answer(s.handleFlush)},
		{Method: "POST", Path: "/v1/pchannels/{p}/trim", Role: RoleSnapshot, handle: answer(s.handlePChannelTrim)},
		{Method: "PUT", Path: "/v1/pchannels/{p}/retention", Role: RoleSnapshot, handle: answer(s.handlePChannelRetention)},
		{Method: "POST", Path: "/v1/snapshots", Role: RoleSnapshot, handle: answer(s.handleSnapshotCreate)},
		{Method: "GET", Path: "/v1/snapshots", Role: RoleSnapshot, handle: answer(s.handleSnapshotList)},
		{Method: "GET", Path: "/v1/snapshots/{name}", Role: RoleSnapshot, handle: describe("name", "snapshot", s.sys.Snapshots().Describe, snapshotOut)},
		{Method: "DELETE", Path: "/v1/snapshots/{name}", Role: RoleSnapshot, handle: s.handleSnapshotDrop},
		{Method: "POST", Path: "/v1/snapshots/{name}/restore", Role: RoleSnapshot, handle: s.handleRestore},
		{Method: "GET", Path: "/v1/restores/{id}", Role: RoleSnapshot, handle: describe("id", "restore job", s.restoreProgress, restoreOut)},
	}
}

func serveOpenAPI(w http.ResponseWriter, _ *http.Request) error {
	w.Header().Set("Content-Type", "application/yaml")
	_, _ = w.Write(openAPI) // a failed write means the client left
	return nil
}
