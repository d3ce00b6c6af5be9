package coordinator

import (
	"errors"
	"testing"
	"time"
)

func TestSessionDecisions(t *testing.T) {
	s := decideRegister(nil, "a", "http://a", "i1", t0)
	if s.Version != 1 || !s.Alive(t0.Add(DefaultSessionTTL), DefaultSessionTTL) || s.Alive(t0.Add(DefaultSessionTTL+1), DefaultSessionTTL) {
		t.Fatalf("registered %+v", s)
	}
	if again := decideRegister(&s, "a", "http://a", "i1", t0.Add(time.Second)); again != s {
		t.Fatalf("retried registration changed the record: %+v", again)
	}
	hb, err := decideHeartbeat(&s, "a", "i1", t0.Add(3*time.Second))
	if err != nil || hb.Version != 2 || !hb.Heartbeat.Equal(t0.Add(3*time.Second)) {
		t.Fatalf("heartbeat %+v, %v", hb, err)
	}
	if back, _ := decideHeartbeat(&hb, "a", "i1", t0); !back.Heartbeat.Equal(hb.Heartbeat) {
		t.Fatalf("heartbeat moved backwards: %v", back.Heartbeat)
	}
	// A second process registers the same ID: the first loses its session.
	other := decideRegister(&hb, "a", "http://a2", "i2", t0.Add(4*time.Second))
	if other.Version != 3 || other.Incarnation != "i2" || other.Address != "http://a2" {
		t.Fatalf("re-registration %+v", other)
	}
	if _, err := decideHeartbeat(&other, "a", "i1", t0.Add(5*time.Second)); !errors.Is(err, ErrSessionLost) {
		t.Fatalf("heartbeat of the old incarnation: %v", err)
	}
	if _, err := decideStop(&other, "a", "i1", t0.Add(5*time.Second)); !errors.Is(err, ErrSessionLost) {
		t.Fatalf("stop by the old incarnation: %v", err)
	}
	st, err := decideStop(&other, "a", "i2", t0.Add(5*time.Second))
	if err != nil || !st.Stopped || st.Alive(t0.Add(5*time.Second), time.Hour) {
		t.Fatalf("stop %+v, %v", st, err)
	}
	if again, _ := decideStop(&st, "a", "i2", t0.Add(6*time.Second)); again.Version != st.Version {
		t.Fatal("stopping twice wrote again")
	}
	if _, err := decideHeartbeat(&st, "a", "i2", t0.Add(6*time.Second)); !errors.Is(err, ErrSessionLost) {
		t.Fatalf("heartbeat after stop: %v", err)
	}
	// The same ID registers again after a stop: a new incarnation.
	if re := decideRegister(&st, "a", "http://a", "i3", t0.Add(7*time.Second)); re.Stopped || re.Version != st.Version+1 {
		t.Fatalf("register after stop: %+v", re)
	}
}
