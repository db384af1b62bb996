package console

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"os"
	"strconv"
)

// auditTailBytes bounds how much of the audit file one request reads: its
// last 256 KiB (about a thousand entries).
const auditTailBytes = 256 << 10

// auditAnswer is GET /admin/console/audit: Available is false (with Reason)
// when this instance keeps no audit file; Entries are the file's JSON lines
// as written (share changes: time, who, remote, action, route, old_bp,
// new_bp, persisted; other actions: time, who, remote, action and their own
// keys), newest first.
type auditAnswer struct {
	Available bool              `json:"available"`
	Reason    string            `json:"reason,omitempty"`
	Source    string            `json:"source"`
	Entries   []json.RawMessage `json:"entries"`
	// Truncated says older entries exist beyond those returned.
	Truncated bool `json:"truncated,omitempty"`
}

// serveAudit serves GET /admin/console/audit?limit=N (default 200, at most
// 1000): the newest entries of the local audit log.
func (c *Console) serveAudit(w http.ResponseWriter, r *http.Request) {
	limit := 200
	if s := r.URL.Query().Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 1000 {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "limit must be an integer in [1, 1000]"})
			return
		}
		limit = n
	}
	path := ""
	if c.opts.AuditLog != nil {
		path = c.opts.AuditLog()
	}
	out := auditAnswer{Source: "file", Entries: []json.RawMessage{}}
	if path == "" {
		out.Reason = errAuditUnavailable.Error()
		writeJSON(w, http.StatusOK, out)
		return
	}
	entries, truncated, err := tailAudit(path, limit)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		// Configured, but nothing was changed yet.
		out.Available = true
	case err != nil:
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "read audit log: " + err.Error()})
		return
	default:
		out.Available, out.Entries, out.Truncated = true, entries, truncated
	}
	writeJSON(w, http.StatusOK, out)
}

// tailAudit returns the newest limit JSON lines of the file at path, newest
// first, reading at most its last auditTailBytes. A line that is not JSON
// (a torn write) is left out. truncated says older lines were not returned.
func tailAudit(path string, limit int) (entries []json.RawMessage, truncated bool, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, false, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, false, err
	}
	off := max(st.Size()-auditTailBytes, 0)
	buf, err := io.ReadAll(io.NewSectionReader(f, off, st.Size()-off))
	if err != nil {
		return nil, false, err
	}
	if off > 0 {
		// The first line is probably cut: start after it.
		if i := bytes.IndexByte(buf, '\n'); i >= 0 {
			buf = buf[i+1:]
		}
		truncated = true
	}
	lines := bytes.Split(bytes.TrimRight(buf, "\n"), []byte("\n"))
	entries = []json.RawMessage{}
	for i := len(lines) - 1; i >= 0; i-- {
		line := bytes.TrimSpace(lines[i])
		if len(line) == 0 || !json.Valid(line) {
			continue
		}
		if len(entries) == limit {
			truncated = true
			break
		}
		entries = append(entries, json.RawMessage(line))
	}
	return entries, truncated, nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
