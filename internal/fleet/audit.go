package fleet

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// AuditRecord is one change of the fleet state, as the audit stream keeps
// it: who made it, on which instance, when, why, and each route's old and
// new values.
type AuditRecord struct {
	// ID is the stream entry's id (filled when read).
	ID   string    `json:"id,omitempty"`
	Time time.Time `json:"time"`
	// Instance is the instance that made the change.
	Instance string `json:"instance"`
	Actor
	// Generation is the generation the change created.
	Generation uint64        `json:"generation"`
	Changes    []RouteChange `json:"changes"`
}

// Audit returns the last limit records of the fleet-wide audit stream,
// newest first. Zero or negative limit means 100. A record that cannot be
// decoded is returned with its ID and Action "unreadable".
func (s *Store) Audit(ctx context.Context, limit int) ([]AuditRecord, error) {
	if limit <= 0 {
		limit = 100
	}
	ctx, cancel := context.WithTimeout(ctx, s.opt.Timeout)
	defer cancel()
	msgs, err := s.rdb.XRevRangeN(ctx, s.key("audit"), "+", "-", int64(limit)).Result()
	if err != nil {
		return nil, s.unavailable(fmt.Errorf("read audit: %w", err))
	}
	out := make([]AuditRecord, 0, len(msgs))
	for _, m := range msgs {
		var rec AuditRecord
		raw, _ := m.Values["record"].(string)
		if err := json.Unmarshal([]byte(raw), &rec); err != nil {
			rec = AuditRecord{Actor: Actor{Action: "unreadable", Reason: err.Error()}}
		}
		rec.ID = m.ID
		out = append(out, rec)
	}
	return out, nil
}
