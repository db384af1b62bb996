package proxy

import (
	"errors"
	"testing"
	"time"
)

// The circuit keeps gobreaker's two-step semantics on the clock it is
// given: counts clear each interval while closed, a done from an earlier
// generation is ignored, excluded outcomes count neither way, and the open
// state lasts exactly timeout.
func TestCircuit(t *testing.T) {
	fail := errors.New("fail")
	newC := func(clock *testClock, trips uint32) (*circuit, *[]string) {
		var changes []string
		return newCircuit(circuitSettings{
			interval: time.Minute, timeout: 10 * time.Second, now: clock.Now,
			readyToTrip: func(c counts) bool { return c.ConsecutiveFailures >= trips },
			isExcluded:  func(err error) bool { return errors.Is(err, errNotCounted) },
			onStateChange: func(from, to circuitState, _ time.Time) {
				changes = append(changes, from.String()+">"+to.String())
			},
		}), &changes
	}
	t.Run("interval clears the closed counts", func(t *testing.T) {
		clock := newTestClock()
		c, _ := newC(clock, 3)
		for range 2 {
			p, _ := c.allow()
			p.done(fail)
		}
		clock.Add(time.Minute + time.Millisecond)
		p, _ := c.allow()
		p.done(fail)
		if s := c.currentState(); s != stateClosed || c.counts().ConsecutiveFailures != 1 {
			t.Fatalf("%s with %+v, want closed with one failure in the new interval", s, c.counts())
		}
	})
	t.Run("a done from an earlier generation is ignored", func(t *testing.T) {
		clock := newTestClock()
		c, changes := newC(clock, 1)
		late, _ := c.allow()
		trip, _ := c.allow()
		trip.done(fail) // opens: a new generation
		late.done(nil)  // reported after the trip: must not count as a probe
		clock.Add(10*time.Second + time.Millisecond)
		if s := c.currentState(); s != stateHalfOpen || c.counts().Requests != 0 {
			t.Fatalf("%s with %+v, want half-open with no request", s, c.counts())
		}
		probe, err := c.allow()
		if err != nil {
			t.Fatal(err)
		}
		probe.done(nil)
		want := []string{"closed>open", "open>half-open", "half-open>closed"}
		if len(*changes) != len(want) || (*changes)[0] != want[0] || (*changes)[1] != want[1] || (*changes)[2] != want[2] {
			t.Fatalf("changes %q, want %q", *changes, want)
		}
	})
	t.Run("excluded outcomes count neither way", func(t *testing.T) {
		clock := newTestClock()
		c, _ := newC(clock, 1)
		p, _ := c.allow()
		p.done(errNotCounted)
		if s := c.currentState(); s != stateClosed || c.counts().TotalFailures != 0 || c.counts().TotalExclusions != 1 {
			t.Fatalf("%s with %+v", s, c.counts())
		}
	})
	t.Run("open lasts exactly timeout, then one probe", func(t *testing.T) {
		clock := newTestClock()
		c, _ := newC(clock, 1)
		p, _ := c.allow()
		p.done(fail)
		clock.Add(10 * time.Second)
		if _, err := c.allow(); !errors.Is(err, errOpenState) {
			t.Fatalf("at timeout: %v, want still open", err)
		}
		clock.Add(time.Millisecond)
		probe, err := c.allow()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.allow(); !errors.Is(err, errTooManyRequests) {
			t.Fatalf("a second probe: %v, want too many requests", err)
		}
		probe.done(fail)
		if s := c.currentState(); s != stateOpen {
			t.Fatalf("%s after a failed probe, want open", s)
		}
	})
}
