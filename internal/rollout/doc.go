// Package rollout is the progressive rollout of a route from legacy to
// native (issue 14): a Plan of steps (shadow, then growing native shares up
// to 100 %), a State per route kept in the fleet store (or in memory on a
// single instance), and Evaluate, a pure function of (state, measured
// window, now) that decides to keep measuring, hold for samples, pause,
// go to the next step, complete, or roll back, and records every gate's
// values so "why" is always answerable.
//
// The measurements come from every instance (Counters), and one instance
// drives the rollouts (Driver) under a fenced lease; see docs/rollout.md.
package rollout
