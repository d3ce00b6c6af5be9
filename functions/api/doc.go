// Package api is Cairn's HTTP API: one ordinary http.Handler that the
// Lambda functions serve through Function URLs (functions/node,
// functions/coordinator, functions/snapshot, each mounting its role's
// routes) and that `cairn serve` mounts whole. Routes are rows of one table
// (routes.go); openapi.yaml (served at GET /v1/openapi.yaml) is their
// reference, and docs/http.md gives the decisions behind it: the error
// codes, the pchannel set, conditional and ordered appends, long polls,
// vchannels, transactions, restores, broadcasts and connection limits.
//
// Handlers only decode, check the request's form and answer; what the node
// decides (the writer pool, leases, vchannel bindings, restores) and what
// any caller's request must pass (trim points, broadcast copies, restore
// targets, ordered-append keys) is functions/system's, whose sentinels
// classify maps onto answers.
//
// # Concurrency
//
// Server and the handlers are safe for concurrent use. Config is read
// once, by New. One Server per system.System: its HTTP metrics register on
// the system's registry.
//
// # Example
//
//	store, _ := objstore.NewFS(".cairn-data")
//	sys, err := system.New(system.Config{}, store)
//	if err != nil { ... }
//	if err := sys.Probe(ctx); err != nil { ... }
//	srv, err := api.New(api.Config{}, sys)
//	if err != nil { ... }
//	defer srv.Close(context.Background()) // releases the leases
//	http.ListenAndServe("127.0.0.1:7070", srv.Handler(api.AllRoles))
package api
