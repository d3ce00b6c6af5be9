package api

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/cairnlog/cairn/functions/api/wire"
	"github.com/cairnlog/cairn/segmentlog"
)

// Transactions (node role): begin, append, commit and rollback through the
// writer pool, with the handle that routes them (docs/http.md,
// "Transactions", says where a transaction lives in each write mode).

// DefaultTxnKeepalive is a transaction's keepalive when begin names none.
const DefaultTxnKeepalive = time.Minute

// txnHandle is a parsed "txn" token.
type txnHandle struct {
	pchannel, vchannel string
	id                 uint64
}

func (h txnHandle) String() string {
	return h.pchannel + ":" + h.vchannel + ":" + strconv.FormatUint(h.id, 10)
}

func parseTxn(s string) (txnHandle, error) {
	parts := strings.Split(s, ":")
	bad := errorf(http.StatusBadRequest, wire.CodeMalformed, "txn %q: want the token begin returned, PCHANNEL:VCHANNEL:ID", s)
	if len(parts) != 3 {
		return txnHandle{}, bad
	}
	id, err := segmentlog.ParseDecimal(parts[2], 1<<64-1)
	if err != nil || id == 0 ||
		validName("pchannel", parts[0]) != nil || validName("vchannel", parts[1]) != nil {
		return txnHandle{}, bad
	}
	return txnHandle{pchannel: parts[0], vchannel: parts[1], id: id}, nil
}

func (s *Server) handleTxnBegin(r *http.Request) (wire.TxnOut, error) {
	name := r.PathValue("v")
	if err := validName("vchannel", name); err != nil {
		return wire.TxnOut{}, err
	}
	req, err := jsonBody[wire.TxnBeginRequest](r, true)
	if err != nil {
		return wire.TxnOut{}, err
	}
	keepalive := DefaultTxnKeepalive
	if req.Keepalive != "" {
		d, err := time.ParseDuration(req.Keepalive)
		if err != nil || d <= 0 || d > segmentlog.MaxTxnKeepalive {
			return wire.TxnOut{}, errorf(http.StatusBadRequest, wire.CodeInvalid, "keepalive %q: want a Go duration in (0, %v]", req.Keepalive, segmentlog.MaxTxnKeepalive)
		}
		keepalive = d
	}
	v, term, id, err := s.sys.BeginTxn(r.Context(), name, keepalive)
	if err != nil {
		return wire.TxnOut{}, err
	}
	h := txnHandle{pchannel: v.PChannel, vchannel: name, id: id}
	return wire.TxnOut{Txn: h.String(), PChannel: v.PChannel, VChannel: name, Term: term, Keepalive: keepalive.String()}, nil
}

func (s *Server) handleTxnAppend(r *http.Request) (wire.TxnAppendResponse, error) {
	h, err := parseTxn(r.PathValue("txn"))
	if err != nil {
		return wire.TxnAppendResponse{}, err
	}
	if err := noQuery(r); err != nil {
		return wire.TxnAppendResponse{}, err
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return wire.TxnAppendResponse{}, err
	}
	in, err := decodeAppendFor(r.Header.Get("Content-Type"), body, s.limits(), h.vchannel)
	if err != nil {
		return wire.TxnAppendResponse{}, err
	}
	if in.expect != nil {
		return wire.TxnAppendResponse{}, errorf(http.StatusBadRequest, wire.CodeInvalid, "a transaction's messages take no expected_offset")
	}
	for i := range in.msgs {
		if !in.msgs[i].Key.IsZero() {
			return wire.TxnAppendResponse{}, errorf(http.StatusBadRequest, wire.CodeInvalid, "message %d: a transaction's messages take no idempotency key (the commit has one)", i)
		}
	}
	if err := s.sys.Pool().AppendTxn(r.Context(), h.pchannel, h.id, in.msgs); err != nil {
		return wire.TxnAppendResponse{}, fmt.Errorf("txn %s: %w", h, err)
	}
	return wire.TxnAppendResponse{Txn: h.String(), Appended: len(in.msgs)}, nil
}

func (s *Server) handleTxnCommit(r *http.Request) (wire.TxnCommitResponse, error) {
	h, err := txnNoBody(r)
	if err != nil {
		return wire.TxnCommitResponse{}, err
	}
	term, acks, err := s.sys.Pool().CommitTxn(r.Context(), h.pchannel, h.id)
	if err != nil {
		return wire.TxnCommitResponse{}, fmt.Errorf("txn %s: %w", h, err)
	}
	return wire.TxnCommitResponse{Txn: h.String(), PChannel: h.pchannel, Term: term, Acks: mapped(acks, ackOut)}, nil
}

func (s *Server) handleTxnRollback(w http.ResponseWriter, r *http.Request) error {
	h, err := txnNoBody(r)
	if err != nil {
		return err
	}
	if err := s.sys.Pool().RollbackTxn(r.Context(), h.pchannel, h.id); err != nil {
		return fmt.Errorf("txn %s: %w", h, err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// txnNoBody parses the handle of a commit or rollback, which take no query
// and no body (or {}).
func txnNoBody(r *http.Request) (txnHandle, error) {
	h, err := parseTxn(r.PathValue("txn"))
	if err != nil {
		return txnHandle{}, err
	}
	_, err = jsonBody[struct{}](r, true)
	return h, err
}
