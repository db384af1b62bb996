package report

import (
	"fmt"
	"math"
	"strings"
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

// meets reports whether a chat point satisfies the capacity criterion.
func meets(p ChatPoint) bool {
	l := p.Load
	return p.Error == "" && l.OK > 0 && l.OverModel.P95MS < criterionMS && l.ErrorRate < maxErrRate
}

// ComputeInstances derives users per instance and instance counts from the chat matrix.
func ComputeInstances(c *Chat) *Instances {
	if c == nil || len(c.Points) == 0 {
		return nil
	}
	in := &Instances{CriterionMS: criterionMS, MaxErrRate: maxErrRate, For: InstanceUsers}
	for _, cfg := range c.Configs {
		row := InstanceRow{Config: cfg}
		var best ChatPoint
		top := 0
		for _, p := range c.Points {
			if p.Config != cfg {
				continue
			}
			top = max(top, p.Users)
			if meets(p) && p.Users > int(row.Capacity) {
				row.Capacity, row.RPS, row.Basis = float64(p.Users), p.Load.RPS, "measured"
			}
			if p.Load.RPS > best.Load.RPS {
				best = p
			}
		}
		// Little's law: users = throughput x response time, with the response time at the
		// criterion's edge (model latency + 300 ms), from the best throughput measured.
		estimate := 0.0
		if best.Load.RPS > 0 {
			estimate = math.Floor(best.Load.RPS * (best.Load.ModelMeanMS + criterionMS) / 1000)
		}
		switch {
		case row.Capacity > 0 && int(row.Capacity) == top:
			row.Basis = "at least (top level met it)"
		case row.Capacity == 0 && estimate > 0:
			row.Capacity, row.RPS, row.Basis = estimate, best.Load.RPS, "estimated (Little's law, no level met it)"
		}
		row.Instances = instancesFor(row.Capacity)
		in.Rows = append(in.Rows, row)
		if (strings.HasPrefix(row.Basis, "measured") || strings.HasPrefix(row.Basis, "at least")) && estimate > row.Capacity {
			// The levels are far apart: say what the best throughput would carry too.
			in.Rows = append(in.Rows, InstanceRow{Config: cfg, Capacity: estimate, RPS: best.Load.RPS,
				Basis: fmt.Sprintf("estimated (Little's law on the best rate, %d users)", best.Users), Instances: instancesFor(estimate)})
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
