package shadow

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"
)

// Admin serves the diff API as a plain http.Handler (mount it on the admin
// listener; with Echo, echo.WrapHandler on each of the three paths):
//
//	GET /admin/diffs?route=&class=&since=&until=&before=&limit=
//	    newest first; since/until are RFC 3339 or unix seconds; before is
//	    the previous page's "next"; limit defaults to 50 (max 500).
//	    Returns {"records":[summary...],"next":"<cursor>"}.
//	GET /admin/diffs/{id}          the full record, 404 if unknown.
//	GET /admin/shadow/summary      per-route tallies, queue depth and the
//	    learnt noise fields. With a FleetTally, "scope" is "fleet": routes
//	    are the fleet's totals and "process" this process's own; without
//	    one (or when Redis cannot be read: see "fleet_error"), "scope" is
//	    "process" and routes are this process's. Queue depth, in flight and
//	    noise fields are always this process's.
//
// Every answer is JSON; bad parameters give 400 {"error": "..."}.
func (m *Mirror) Admin() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /admin/diffs", m.listDiffs)
	mux.HandleFunc("GET /admin/diffs/{id}", m.getDiff)
	mux.HandleFunc("GET /admin/shadow/summary", m.summary)
	return mux
}

// DiffSummary is one line of GET /admin/diffs.
type DiffSummary struct {
	ID            string    `json:"id"`
	Time          time.Time `json:"time"`
	Route         string    `json:"route"`
	Class         Class     `json:"class"`
	PrimarySide   string    `json:"primary_side"`
	Method        string    `json:"method"`
	Path          string    `json:"path"`
	PrimaryStatus int       `json:"primary_status"`
	ShadowStatus  int       `json:"shadow_status"`
	Mismatches    int       `json:"mismatches"`
	Paths         []string  `json:"paths,omitempty"`
}

func summarize(r Record) DiffSummary {
	s := DiffSummary{ID: r.ID, Time: r.Time, Route: r.Route, Class: r.Class, PrimarySide: r.PrimarySide,
		Method: r.Request.Method, Path: r.Request.Path, PrimaryStatus: r.Primary.Status,
		ShadowStatus: r.Shadow.Status, Mismatches: len(r.Mismatches) + r.Dropped}
	for i, mm := range r.Mismatches {
		if i == 5 {
			break
		}
		s.Paths = append(s.Paths, mm.Path)
	}
	return s
}

func (m *Mirror) listDiffs(w http.ResponseWriter, r *http.Request) {
	q, err := parseQuery(r)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	page, err := m.store.List(r.Context(), q)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	out := struct {
		Records []DiffSummary `json:"records"`
		Next    string        `json:"next,omitempty"`
	}{Records: []DiffSummary{}, Next: page.Next}
	for _, rec := range page.Records {
		out.Records = append(out.Records, summarize(rec))
	}
	writeJSON(w, http.StatusOK, out)
}

func parseQuery(r *http.Request) (Query, error) {
	v := r.URL.Query()
	q := Query{Route: v.Get("route"), Class: Class(v.Get("class")), Before: v.Get("before")}
	switch q.Class {
	case "", ClassMatch, ClassEncoding, ClassSemantic, ClassNoise, ClassError:
	default:
		return Query{}, errors.New("class must be one of match, encoding_only, semantic, noise, error")
	}
	var err error
	if q.Since, err = parseTime(v.Get("since")); err != nil {
		return Query{}, errors.New("since: " + err.Error())
	}
	if q.Until, err = parseTime(v.Get("until")); err != nil {
		return Query{}, errors.New("until: " + err.Error())
	}
	if s := v.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 500 {
			return Query{}, errors.New("limit must be an integer in [1, 500]")
		}
		q.Limit = n
	}
	return q, nil
}

func parseTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f < 0 || f > 1e11 {
		return time.Time{}, errors.New("want RFC 3339 or unix seconds")
	}
	return time.UnixMilli(int64(f * 1000)), nil
}

func (m *Mirror) getDiff(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	rec, err := m.store.Get(r.Context(), id)
	switch {
	case errors.Is(err, ErrNotFound):
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "no diff record " + strconv.Quote(id)})
	case err != nil:
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
	default:
		writeJSON(w, http.StatusOK, rec)
	}
}

// Scopes of GET /admin/shadow/summary.
const (
	ScopeFleet   = "fleet"
	ScopeProcess = "process"
)

func (m *Mirror) summary(w http.ResponseWriter, r *http.Request) {
	type route struct {
		RouteSummary
		NoiseFields []FieldStat `json:"noise_fields,omitempty"`
	}
	out := struct {
		Scope      string  `json:"scope"`
		FleetError string  `json:"fleet_error,omitempty"`
		QueueDepth int     `json:"queue_depth"`
		InFlight   int64   `json:"in_flight"`
		Routes     []route `json:"routes"`
		// Process is []RouteSummary with scope fleet, else absent.
		Process any `json:"process,omitempty"`
	}{Scope: ScopeProcess, QueueDepth: m.QueueDepth(), InFlight: m.busy.Load(), Routes: []route{}}
	local := m.Summary()
	routes := local
	if m.opts.Fleet != nil {
		fleet, err := m.FleetSummary(r.Context())
		if err != nil {
			out.FleetError = err.Error()
		} else {
			out.Scope, routes = ScopeFleet, fleet
			out.Process = append([]RouteSummary{}, local...)
		}
	}
	for _, s := range routes {
		rt := route{RouteSummary: s}
		if n := m.opts.Noise; n != nil {
			for _, f := range n.Fields(s.Route) {
				if f.NoiseRate > 0 {
					rt.NoiseFields = append(rt.NoiseFields, f)
				}
			}
		}
		out.Routes = append(out.Routes, rt)
	}
	writeJSON(w, http.StatusOK, out)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
