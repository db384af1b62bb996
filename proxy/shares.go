package proxy

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cutover/cutover/config"
)

// Change is one share change, as audited.
type Change struct {
	Route string `json:"route"`
	Old   int    `json:"old_bp"`
	New   int    `json:"new_bp"`
}

// ChangeResult is the outcome of SetShares.
type ChangeResult struct {
	Changes []Change `json:"changes"`
	// Persisted is true when the change was written back to the config
	// file or, with a fleet store, to the store.
	Persisted bool `json:"persisted"`
	// PersistError says why it was not (the change is in force anyway).
	PersistError string `json:"persist_error,omitempty"`
	// Generation is the fleet state's generation after the change (0
	// without a fleet store).
	Generation uint64 `json:"generation,omitempty"`
}

// Actor identifies who made a change, for the audit log.
type Actor struct {
	Who    string `json:"who"`
	Remote string `json:"remote,omitempty"`
	Action string `json:"action"`
	// Reason is why, as the caller gives it. Zero means none.
	Reason string `json:"reason,omitempty"`
}

// SetShares changes the native shares of the named routes (basis points) at
// once and atomically, then persists them to the config file (when the config
// has one and admin.persist is on) and audits every change. The change is in
// force even if persisting fails (a rollback must never wait on a read-only
// mount); the result says so, and the change is kept as an unsaved overlay
// that reloads of the file respect (reloadLocked), so it is never reverted
// silently. Unknown routes and shares above 0 for routes without a native
// handler are rejected and nothing changes.
//
// With a fleet store the change is made for the whole fleet instead (see
// fleet.go): it fails with fleet.ErrConflict when the fleet's state moved
// on since this instance applied it, and fleet.ErrUnavailable when the
// store cannot be reached; the config file is not written.
//
// A change made outside a rollout pauses the route's active rollout (or,
// for an auto-rollback, marks it rolled back): see rollout.go.
func (rt *Router) SetShares(shares map[string]int, actor Actor) (ChangeResult, error) {
	if rt.fleet != nil {
		return rt.setFleetShares(shares, actor, nil, false)
	}
	res, err := rt.setLocalShares(shares, actor)
	if err == nil {
		rt.rollouts.localInterrupt(res.Changes, actor)
	}
	return res, err
}

func (rt *Router) setLocalShares(shares map[string]int, actor Actor) (ChangeResult, error) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	cur := rt.cfg
	changes, err := rt.checkShares(cur, shares)
	if err != nil {
		return ChangeResult{}, err
	}
	res := ChangeResult{Changes: changes}
	next := cur.Clone()
	for _, c := range changes {
		setShare(next.Route(c.Route), c.New)
	}
	if len(res.Changes) == 0 {
		res.Persisted = true
		return res, nil
	}
	if err := rt.applyLocked(next); err != nil {
		return ChangeResult{}, err
	}
	for _, c := range res.Changes {
		rt.metrics.changes.WithLabelValues(c.Route, actor.Action).Inc()
	}
	if next.Admin.PersistShares() && next.File() != "" {
		changed := map[string]int{}
		for _, c := range res.Changes {
			changed[c.Route] = c.New
		}
		if err := config.SetShares(next.File(), changed); err != nil {
			res.PersistError = err.Error()
			rt.log.Error("share change not persisted", "error", err)
		} else {
			res.Persisted = true
		}
	} else {
		res.PersistError = "not persisted: no config file or admin.persist is off"
	}
	for _, c := range res.Changes {
		rt.noteUnsavedLocked(c.Route, c.New, res.Persisted)
	}
	rt.audit(next.Admin.AuditLog, actor, res)
	return res, nil
}

// unsavedShare is a share change in force that the config file does not
// hold (writing it failed, or admin.persist is off).
type unsavedShare struct {
	bp     int // the share in force
	fileBP int // the file's share for the route when the change was made
}

// ReloadActor is who the audit names for share changes a reload of the
// config file makes.
var ReloadActor = Actor{Who: "config file", Action: "reload"}

func sharesOf(cfg *config.Config) map[string]int {
	out := make(map[string]int, len(cfg.Routes))
	for _, r := range cfg.Routes {
		out[r.Name] = r.Share
	}
	return out
}

// noteUnsavedLocked records a share change made by SetShares: persisted, the
// file holds it; not, it is an overlay until the file catches up.
func (rt *Router) noteUnsavedLocked(route string, bp int, persisted bool) {
	file, known := rt.fromFile[route]
	switch {
	case persisted:
		if rt.fromFile == nil {
			rt.fromFile = map[string]int{}
		}
		rt.fromFile[route] = bp
		delete(rt.unsaved, route)
	case known && file == bp:
		delete(rt.unsaved, route) // back to what the file says
	default:
		if rt.unsaved == nil {
			rt.unsaved = map[string]unsavedShare{}
		}
		u, ok := rt.unsaved[route]
		if !ok {
			u.fileBP = file
		}
		u.bp = bp
		rt.unsaved[route] = u
	}
}

// reloadLocked applies a config read from the file, keeping every unsaved
// share change over it while the file's share for that route is still the
// one the change was made over (a file edited since wins: a deliberate newer
// change). Every share the reload changes is audited (actor ReloadActor), and
// every unsaved change kept is logged at WARN.
func (rt *Router) reloadLocked(cfg *config.Config) error {
	next := cfg
	unsaved := map[string]unsavedShare{}
	var kept []Change
	for name, u := range rt.unsaved {
		rc := cfg.Route(name)
		if rc == nil || rc.Share == u.bp || rc.Share != u.fileBP {
			continue // gone, caught up, or edited since: the file's share
		}
		if next == cfg {
			next = cfg.Clone()
		}
		setShare(next.Route(name), u.bp)
		unsaved[name] = u
		kept = append(kept, Change{Route: name, Old: rc.Share, New: u.bp})
	}
	old := rt.cfg
	if err := rt.applyLocked(next); err != nil {
		return err
	}
	rt.fromFile, rt.unsaved = sharesOf(cfg), unsaved
	slices.SortFunc(kept, func(a, b Change) int { return strings.Compare(a.Route, b.Route) })
	for _, k := range kept {
		rt.log.Warn("config reloaded; a share change not saved to the file stays in force over it",
			"route", k.Route, "file_bp", k.Old, "in_force_bp", k.New)
	}
	var res ChangeResult
	before := sharesOf(old)
	for _, r := range next.Routes {
		if b, ok := before[r.Name]; ok && b != r.Share {
			res.Changes = append(res.Changes, Change{Route: r.Name, Old: b, New: r.Share})
		}
	}
	if len(res.Changes) > 0 {
		res.Persisted = true // the file is where they come from
		for _, c := range res.Changes {
			rt.metrics.changes.WithLabelValues(c.Route, ReloadActor.Action).Inc()
		}
		rt.audit(next.Admin.AuditLog, ReloadActor, res)
	}
	return nil
}

// setShare sets a route's share as SetShares writes it: in the form the
// route was given in.
func setShare(rc *config.Route, bp int) {
	rc.Share = bp
	if rc.NativePercent != nil || rc.NativeBP == nil {
		p := config.BPToPercent(bp)
		rc.NativePercent, rc.NativeBP = &p, nil
	} else {
		v := bp
		rc.NativeBP = &v
	}
}

// checkShares validates a share change against cfg and returns what it
// changes, in route name order: unknown routes, shares out of range and
// native shares for routes without a native handler are errors.
func (rt *Router) checkShares(cfg *config.Config, shares map[string]int) ([]Change, error) {
	var changes []Change
	for _, name := range slices.Sorted(maps.Keys(shares)) {
		bp := shares[name]
		rc := cfg.Route(name)
		if rc == nil {
			return nil, fmt.Errorf("route %q: %w", name, ErrUnknownRoute)
		}
		if bp < 0 || bp > config.MaxShare {
			return nil, fmt.Errorf("route %q: share %d bp is not in [0, %d]", name, bp, config.MaxShare)
		}
		if bp > 0 && !rt.native[name] {
			return nil, fmt.Errorf("route %q: %w", name, ErrNoHandler)
		}
		if rc.Share != bp {
			changes = append(changes, Change{Route: name, Old: rc.Share, New: bp})
		}
	}
	return changes, nil
}

// Rollback sets every route's share to 0 % in one change.
func (rt *Router) Rollback(actor Actor) (ChangeResult, error) {
	return rt.SetShares(rt.zeroShares(), actor)
}

func (rt *Router) zeroShares() map[string]int {
	cfg := rt.Config()
	shares := make(map[string]int, len(cfg.Routes))
	for _, r := range cfg.Routes {
		shares[r.Name] = 0
	}
	return shares
}

var auditMu sync.Mutex

// audit writes one record per change to the process log and, when
// configured, appends it as a JSON line to the audit file.
func (rt *Router) audit(path string, actor Actor, res ChangeResult) {
	now := time.Now().UTC()
	for _, c := range res.Changes {
		rt.log.Warn("audit: share changed", "who", actor.Who, "remote", actor.Remote, "action", actor.Action,
			"reason", actor.Reason, "route", c.Route, "old_bp", c.Old, "new_bp", c.New, "persisted", res.Persisted,
			"generation", res.Generation)
	}
	var lines [][]byte
	for _, c := range res.Changes {
		line, _ := json.Marshal(struct {
			Time time.Time `json:"time"`
			Actor
			Change
			Persisted bool `json:"persisted"`
		}{now, actor, c, res.Persisted})
		lines = append(lines, line)
	}
	rt.appendAudit(path, lines)
}

// auditAction audits an admin mutation other than a share change
// (actor.Action names it): a WARN line msg in the process log with the
// key-value pairs kv (string keys), and, when admin.audit_log is set, a JSON
// line {time, who, remote, action, <kv>...}.
func (rt *Router) auditAction(actor Actor, msg string, kv ...any) {
	rt.log.Warn(msg, append([]any{"who", actor.Who, "remote", actor.Remote, "action", actor.Action}, kv...)...)
	path := rt.Config().Admin.AuditLog
	if path == "" {
		return
	}
	rec := map[string]any{"time": time.Now().UTC(), "who": actor.Who, "remote": actor.Remote, "action": actor.Action}
	for i := 0; i+1 < len(kv); i += 2 {
		if k, ok := kv[i].(string); ok {
			rec[k] = kv[i+1]
		}
	}
	line, _ := json.Marshal(rec)
	rt.appendAudit(path, [][]byte{line})
}

// appendAudit appends lines (JSON, without newlines) to the audit file at
// path; "" means none.
func (rt *Router) appendAudit(path string, lines [][]byte) {
	if path == "" || len(lines) == 0 {
		return
	}
	auditMu.Lock()
	defer auditMu.Unlock()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		rt.log.Error("audit log", "error", err)
		return
	}
	defer f.Close()
	for _, line := range lines {
		if _, err := f.Write(append(line, '\n')); err != nil {
			rt.log.Error("audit log", "error", err)
			return
		}
	}
}
