package client

import (
	"context"
	"net/http"
	"testing"
)

// stalledTransport holds every request until its context ends: the
// Producer's first batch never returns, so what SendAsync costs is
// measured alone.
type stalledTransport struct{}

func (stalledTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	<-r.Context().Done()
	if r.Body != nil {
		r.Body.Close()
	}
	return nil, r.Context().Err()
}

// BenchmarkProducerSendAsync is the per-message cost of queueing a message
// on a Producer (the dispatcher is stalled on its first request): allocs/op
// and B/op are per message.
func BenchmarkProducerSendAsync(b *testing.B) {
	c, err := New("http://127.0.0.1:1", WithHTTPClient(&http.Client{Transport: stalledTransport{}}))
	if err != nil {
		b.Fatal(err)
	}
	p, err := c.Producer("p0", ProducerConfig{VChannel: "v", MaxPending: 1 << 24})
	if err != nil {
		b.Fatal(err)
	}
	payload := make([]byte, 1024)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.SendAsync(ctx, Message{Payload: payload}); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_ = p.Close(cctx) // abandons the stalled request
}
