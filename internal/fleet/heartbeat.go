package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Report is what an instance says about its load in each heartbeat.
type Report struct {
	// Breakers is each breaker's state by name ("chat/native": "open").
	Breakers map[string]string `json:"breakers,omitempty"`
	// InFlight is the requests being served.
	InFlight int64 `json:"in_flight"`
	// ShadowQueue is the shadow jobs waiting.
	ShadowQueue int `json:"shadow_queue"`
}

// Heartbeat is one instance's last report to the fleet.
type Heartbeat struct {
	Instance string    `json:"instance"`
	Version  string    `json:"version,omitempty"`
	Started  time.Time `json:"started"`
	Time     time.Time `json:"time"`
	// Generation is the generation the instance applies.
	Generation uint64 `json:"generation"`
	// Source is where its shares come from ("file" after a startup fallback).
	Source Source `json:"source"`
	// FileFallback is when it started on the file's shares, if it did.
	FileFallback *time.Time `json:"file_fallback,omitempty"`
	Report
}

// Uptime is how long the instance had run at its heartbeat.
func (h Heartbeat) Uptime() time.Duration { return h.Time.Sub(h.Started) }

// heartbeat writes this instance's heartbeat every third of the TTL and
// after each applied snapshot, until ctx ends.
func (s *Store) heartbeat(ctx context.Context) {
	t := time.NewTicker(s.opt.HeartbeatTTL / 3)
	defer t.Stop()
	for {
		if err := s.beat(ctx); err != nil && ctx.Err() == nil {
			s.setErr(err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.beatNow:
		}
	}
}

// beat writes one heartbeat. Before the instance is Ready there is nothing
// to report yet.
func (s *Store) beat(ctx context.Context) error {
	cur := s.current.Load()
	if cur == nil {
		return nil
	}
	hb := Heartbeat{Instance: s.opt.Instance, Version: s.opt.Version, Started: s.started.UTC(), Time: s.opt.Now().UTC(),
		Generation: cur.gen, Source: cur.source, FileFallback: s.fallback.Load()}
	if s.opt.Report != nil {
		hb.Report = s.opt.Report()
	}
	b, err := json.Marshal(hb)
	if err != nil {
		return fmt.Errorf("encode heartbeat: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, s.opt.Timeout)
	defer cancel()
	_, err = s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, s.key("instance", s.opt.Instance), b, s.opt.HeartbeatTTL)
		p.ZAdd(ctx, s.key("instances"), redis.Z{Score: float64(hb.Time.UnixMilli()), Member: s.opt.Instance})
		return nil
	})
	if err != nil {
		return s.unavailable(fmt.Errorf("heartbeat: %w", err))
	}
	return nil
}

// deregister removes this instance's heartbeat (best effort, on shutdown).
func (s *Store) deregister() {
	ctx, cancel := context.WithTimeout(context.Background(), s.opt.Timeout)
	defer cancel()
	_, _ = s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Del(ctx, s.key("instance", s.opt.Instance))
		p.ZRem(ctx, s.key("instances"), s.opt.Instance)
		return nil
	})
}

// InstanceView is one live instance in the fleet view.
type InstanceView struct {
	Heartbeat
	UptimeSeconds float64 `json:"uptime_seconds"`
	// Behind is true when the instance has not applied the store's generation.
	Behind bool `json:"behind"`
}

// View is the fleet as the store sees it.
type View struct {
	Store string `json:"store"`
	// Generation is the store's current generation.
	Generation uint64 `json:"generation"`
	// Instances are the instances with a live heartbeat, by name.
	Instances []InstanceView `json:"instances"`
}

// View reads the store's generation and every live heartbeat; instances
// whose heartbeat expired are dropped from the index on the way.
func (s *Store) View(ctx context.Context) (View, error) {
	ctx, cancel := context.WithTimeout(ctx, s.opt.Timeout)
	defer cancel()
	v := View{Store: s.name, Instances: []InstanceView{}}
	genStr, err := s.rdb.HGet(ctx, s.key("state"), "gen").Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return View{}, s.unavailable(fmt.Errorf("fleet view: %w", err))
	}
	if genStr != "" {
		if v.Generation, err = strconv.ParseUint(genStr, 10, 64); err != nil {
			return View{}, s.unavailable(fmt.Errorf("fleet view: generation %q: %w", genStr, err))
		}
	}
	names, err := s.rdb.ZRange(ctx, s.key("instances"), 0, -1).Result()
	if err != nil {
		return View{}, s.unavailable(fmt.Errorf("fleet view: %w", err))
	}
	slices.Sort(names)
	if len(names) == 0 {
		return v, nil
	}
	keys := make([]string, len(names))
	for i, n := range names {
		keys[i] = s.key("instance", n)
	}
	vals, err := s.rdb.MGet(ctx, keys...).Result()
	if err != nil {
		return View{}, s.unavailable(fmt.Errorf("fleet view: %w", err))
	}
	var expired []any
	for i, val := range vals {
		str, ok := val.(string)
		var hb Heartbeat
		if !ok || json.Unmarshal([]byte(str), &hb) != nil {
			expired = append(expired, names[i])
			continue
		}
		v.Instances = append(v.Instances, InstanceView{Heartbeat: hb, UptimeSeconds: hb.Uptime().Seconds(),
			Behind: hb.Generation != v.Generation || hb.Source != SourceStore})
	}
	if len(expired) > 0 {
		s.rdb.ZRem(ctx, s.key("instances"), expired...)
	}
	return v, nil
}
