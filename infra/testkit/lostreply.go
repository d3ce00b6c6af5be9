package testkit

import (
	"context"
	"fmt"
	"sync"

	"github.com/cairnlog/cairn/infra/objstore"
)

// LoseFirstReply returns store with one reply lost: the first PutIfMatch
// of a key match accepts is applied, then runs before its caller hears
// anything, and the caller gets a retryable error (a timeout whose write
// landed). Every other call passes through.
func LoseFirstReply(store objstore.Store, match func(key string) bool, then func()) objstore.Store {
	return &lostReply{Store: store, match: match, then: then}
}

type lostReply struct {
	objstore.Store
	match func(key string) bool
	then  func()
	once  sync.Once
}

func (l *lostReply) PutIfMatch(ctx context.Context, key string, body []byte, etag string) (string, error) {
	tag, err := l.Store.PutIfMatch(ctx, key, body, etag)
	lost := false
	if err == nil && l.match(key) {
		l.once.Do(func() { l.then(); lost = true })
	}
	if lost {
		return "", fmt.Errorf("put %s: reply lost: %w", key, objstore.ErrTransient)
	}
	return tag, err
}
