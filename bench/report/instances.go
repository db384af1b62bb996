package report

import (
	"fmt"
	"math"
	"slices"
)

// Capacity criterion from the seed's business case: P95 under 300 ms over the model latency and
// under 0.1 % errors.
const (
	criterionMS = 300
	maxErrRate  = 0.001
)

// InstanceUsers are the fleet sizes the arithmetic is done for.
var InstanceUsers = []int{700, 2000, 3500}

// SeedRows are the seed's own figures: Flask holds about 175 concurrent users per instance, and the
// target is 2,000+ per instance (1,000+ RPS).
var SeedRows = []InstanceRow{
	{Config: "seed: Flask (as sold)", Capacity: 175, Basis: "seed figure", Seed: true},
	{Config: "seed: Go target", Capacity: 2000, Basis: "seed figure", RPS: 1000, Seed: true},
}

// Meets reports whether a chat point satisfies the capacity criterion.
func Meets(p ChatPoint) bool {
	l := p.Load
	return p.Error == "" && l.OK > 0 && l.OverModel.P95MS < criterionMS && l.ErrorRate < maxErrRate
}

// ComputeInstances derives users per instance and instance counts from the chat matrix, from
// measured levels only: a configuration's capacity is the highest level that meets the criterion
// with every lower level meeting it too, bounded above by the first level that fails. Nothing is
// extrapolated: a figure above a measured failing level is never reported.
func ComputeInstances(c *Chat) *Instances {
	if c == nil || len(c.Points) == 0 {
		return nil
	}
	in := &Instances{CriterionMS: criterionMS, MaxErrRate: maxErrRate, For: InstanceUsers}
	for _, cfg := range c.Configs {
		var pts []ChatPoint
		for _, p := range c.Points {
			if p.Config == cfg {
				pts = append(pts, p)
			}
		}
		if len(pts) == 0 {
			continue
		}
		slices.SortFunc(pts, func(a, b ChatPoint) int { return a.Users - b.Users })
		row := InstanceRow{Config: cfg, Lowest: pts[0].Users}
		for _, p := range pts {
			if !Meets(p) {
				row.FailsAt = p.Users
				break
			}
			row.Capacity, row.RPS = float64(p.Users), p.Load.RPS
		}
		switch {
		case row.Capacity == 0:
			row.Basis = fmt.Sprintf("none: fails at the lowest level measured (%d users)", row.Lowest)
			row.InstancesAtLeast = true
			// Capacity is at most Lowest-1 users: at least this many instances.
			row.Instances = instancesFor(float64(row.Lowest - 1))
		case row.FailsAt == 0:
			row.Basis = fmt.Sprintf("at least: passes at %d users, the top level measured", int(row.Capacity))
			row.Instances = instancesFor(row.Capacity)
		default:
			row.Basis = fmt.Sprintf("measured: passes at %d users, fails at %d", int(row.Capacity), row.FailsAt)
			row.Instances = instancesFor(row.Capacity)
		}
		for _, p := range pts {
			if p.Users > row.FailsAt && row.FailsAt > 0 && Meets(p) {
				row.Basis += fmt.Sprintf(" (passes again at %d users; not counted, a lower level failed)", p.Users)
				break
			}
		}
		in.Rows = append(in.Rows, row)
	}
	var legacy *InstanceRow
	for i := range in.Rows {
		if in.Rows[i].Config == "legacy" {
			legacy = &in.Rows[i]
		}
	}
	if legacy != nil && legacy.Capacity > 0 {
		for i := range in.Rows {
			r := &in.Rows[i]
			if r.Config == "legacy" || r.Capacity == 0 {
				continue
			}
			r.RatioLegacyUsers = r.Capacity / legacy.Capacity
			if legacy.RPS > 0 {
				r.RatioLegacyRPS = r.RPS / legacy.RPS
			}
		}
	}
	for _, s := range SeedRows {
		s.Instances = instancesFor(s.Capacity)
		in.Rows = append(in.Rows, s)
	}
	return in
}

func instancesFor(capacity float64) []int {
	out := make([]int, len(InstanceUsers))
	for i, u := range InstanceUsers {
		if capacity <= 0 {
			out[i] = -1
			continue
		}
		out[i] = int(math.Ceil(float64(u) / capacity))
	}
	return out
}
