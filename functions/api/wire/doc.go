// Package wire is the HTTP API's contract in Go: the JSON bodies of every
// route, the media types of an append, the error codes of an answer and
// the limits a client can rely on, as functions/api/openapi.yaml specifies
// them (functions/api's tests keep the two equal, field by field). It
// holds types and constants only, so that any Go client may use it without
// the server.
package wire
