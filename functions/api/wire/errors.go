package wire

// Error codes: the "code" of every error body. Clients switch on the code,
// never on the message. The table in doc.go gives each code's status.
const (
	CodeMalformed        = "malformed"              // 400: unparsable body, query or position
	CodeInvalidName      = "invalid_name"           // 400: a pchannel or vchannel name fails ValidateName
	CodeInvalid          = "invalid"                // 400: well-formed but not allowed (e.g. a control message type)
	CodeUnauthorized     = "unauthorized"           // 401
	CodeNotFound         = "not_found"              // 404: no such route
	CodeUnknownPChannel  = "unknown_pchannel"       // 404
	CodeUnknownVChannel  = "unknown_vchannel"       // 404
	CodeUnknownSnapshot  = "unknown_snapshot"       // 404: no snapshot of that name (or it was dropped)
	CodeUnknownRestore   = "unknown_restore"        // 404: no restore job of that ID
	CodeUnknownTxn       = "unknown_txn"            // 404: rolled back, expired, aborted by a failover, or never begun
	CodeUnknownBroadcast = "unknown_broadcast"      // 404: no broadcast of that ID (or it was collected)
	CodeMethodNotAllowed = "method_not_allowed"     // 405
	CodeRequestTimeout   = "request_timeout"        // 408: the body did not arrive within Config.BodyTimeout
	CodeFenced           = "fenced"                 // 409: a newer term took the pchannel
	CodeExists           = "exists"                 // 409: the name is taken (snapshot, restore job, restore target, broadcast ID with other content)
	CodeVChannelDropped  = "vchannel_dropped"       // 409: the vchannel is dropped (names are never reused)
	CodeBindingConflict  = "binding_conflict"       // 409: the vchannel exists bound to another pchannel
	CodeWrongState       = "wrong_state"            // 409: e.g. restoring a snapshot that is not committed
	CodeTxnExpired       = "txn_expired"            // 409: the transaction's keepalive lapsed; it was rolled back
	CodeTruncated        = "truncated"              // 410: the position lies below a trim point ("earliest" says where to read) or the flush checkpoint
	CodeOffsetMismatch   = "offset_mismatch"        // 412: expected_offset is not the tail
	CodeOutOfSequence    = "out_of_sequence"        // 412: after_seq's message is neither acked nor queued
	CodeTooLarge         = "too_large"              // 413
	CodeUnsupportedType  = "unsupported_media_type" // 415
	CodeTooManyWaiters   = "too_many_waiters"       // 429
	CodeHeadersTooLarge  = "headers_too_large"      // 431: request headers over net/http's limit (1 MiB)
	CodeInternal         = "internal"               // 500
	CodeCorrupt          = "corrupt"                // 500: a stored batch does not decode
	CodeNotImplemented   = "not_implemented"        // 501: a transfer encoding net/http does not know
	CodeLeaseHeld        = "lease_held"             // 503: another holder's lease is live
	CodeOutcomeUnknown   = "outcome_unknown"        // 503: the append may or may not have landed
	CodeUnavailable      = "unavailable"            // 503: store or lease trouble, or shutting down
	CodeNoHolder         = "no_holder"              // 503: the vchannel's pchannel has no live lease holder (locate)
)
