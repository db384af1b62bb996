package shadow

import (
	"bytes"
	"compress/zlib"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"

	"github.com/redis/go-redis/v9"
)

// StateCopier captures the state a shadow call of a shadow-safe write route
// will read. The proxy calls Snapshot BEFORE forwarding the primary, so the
// shadow sees the state as it was before the primary's own write.
//
// A nil Snapshot with a nil error means there is nothing to copy (for example
// a chat that starts a new conversation).
type StateCopier interface {
	Snapshot(ctx context.Context, r *http.Request, body []byte) (Snapshot, error)
}

// Snapshot is state captured before the primary ran. The mirror calls Stage
// right before the shadow call, holding a lock on Key so that two shadows of
// the same conversation never see each other's staging, and calls the
// returned release after the shadow call (and any noise replay) ends.
type Snapshot interface {
	Key() string
	Stage(ctx context.Context) (release func(context.Context) error, err error)
}

// RedisCopier copies a conversation's history list (`conversation:<id>`, the
// schema in docs/ARCHITECTURE.md) from the production Redis into the isolated
// shadow Redis. Snapshot reads the list (LRANGE, one round trip) and keeps it
// in memory; Stage replaces the shadow copy atomically (MULTI DEL+RPUSH);
// release deletes it again so the isolated store does not grow.
//
// Errors are Redis errors (the proxy counts SkipSnapshot and serves the
// primary unshadowed). Safe for concurrent use. Within one process the mirror serialises staging
// per conversation; several proxies sharing one shadow Redis can still race on
// the same conversation (a false diff, never a production write).
type RedisCopier struct {
	// Source is the production Redis. It is only read (LLEN, LRANGE). Required.
	Source redis.Cmdable
	// Dest is the isolated shadow Redis. Required, and must not be Source.
	Dest redis.Cmdable
	// KeyPrefix is put before the id. Empty means "conversation:".
	KeyPrefix string
	// MaxItems is how many of the newest list items are copied: the chat
	// endpoints read only the last 2×HISTORY_TURNS, so any value at least
	// that large gives the shadow exactly what the primary read. Zero means
	// 1000.
	MaxItems int64
	// ConversationID extracts the id from the request. Nil means
	// DefaultConversationID with the cookie "session".
	ConversationID func(r *http.Request, body []byte) string
	// KeepAfter leaves the copy in the shadow Redis after the shadow call
	// (for debugging); false deletes it.
	KeepAfter bool
}

var _ StateCopier = (*RedisCopier)(nil)

// Snapshot implements StateCopier.
func (c *RedisCopier) Snapshot(ctx context.Context, r *http.Request, body []byte) (Snapshot, error) {
	idf := c.ConversationID
	if idf == nil {
		idf = func(r *http.Request, body []byte) string { return DefaultConversationID(r, body, "session", nil) }
	}
	id := idf(r, body)
	if id == "" {
		return nil, nil
	}
	if !conversationID.MatchString(id) {
		// Both backends reject such an id (400) before reading any state.
		return nil, nil
	}
	prefix := c.KeyPrefix
	if prefix == "" {
		prefix = "conversation:"
	}
	limit := c.MaxItems
	if limit <= 0 {
		limit = 1000
	}
	key := prefix + id
	items, err := c.Source.LRange(ctx, key, -limit, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("snapshot %s: %w", key, err)
	}
	return &listSnapshot{dest: c.Dest, key: key, items: items, keep: c.KeepAfter}, nil
}

// conversationID is the id syntax both backends accept (docs/ARCHITECTURE.md).
var conversationID = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

type listSnapshot struct {
	dest  redis.Cmdable
	key   string
	items []string
	keep  bool
}

func (s *listSnapshot) Key() string { return s.key }

func (s *listSnapshot) Stage(ctx context.Context) (func(context.Context) error, error) {
	_, err := s.dest.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Del(ctx, s.key)
		if len(s.items) > 0 {
			args := make([]any, len(s.items))
			for i, it := range s.items {
				args[i] = it
			}
			p.RPush(ctx, s.key, args...)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("stage %s: %w", s.key, err)
	}
	return func(ctx context.Context) error {
		if s.keep {
			return nil
		}
		if err := s.dest.Del(ctx, s.key).Err(); err != nil {
			return fmt.Errorf("release %s: %w", s.key, err)
		}
		return nil
	}, nil
}

// maxSessionBytes bounds a decompressed session payload.
const maxSessionBytes = 64 << 10

// DefaultConversationID returns the conversation id of a chat request: the
// string field `conversation_id` of a JSON object body, else the same field
// of the Flask session cookie named cookie. decode turns a cookie value into
// the session's fields; nil decodes the payload WITHOUT checking its
// signature (enough to pick which history to copy into the isolated store,
// where a forged cookie reaches nothing the client could not already name;
// plug compat's SessionCodec to verify). Returns "" when there is no id.
func DefaultConversationID(r *http.Request, body []byte, cookie string, decode func(string) (map[string]any, error)) string {
	if len(body) > 0 {
		var v struct {
			ID any `json:"conversation_id"`
		}
		if json.Unmarshal(body, &v) == nil {
			if s, ok := v.ID.(string); ok && s != "" {
				return s
			}
		}
	}
	c, err := r.Cookie(cookie)
	if err != nil || c.Value == "" {
		return ""
	}
	if decode == nil {
		decode = UnverifiedSession
	}
	fields, err := decode(c.Value)
	if err != nil {
		return ""
	}
	s, _ := fields["conversation_id"].(string)
	return s
}

// UnverifiedSession decodes a Flask (itsdangerous) session cookie payload —
// `[.]base64url(json or zlib(json)).timestamp.signature` — without checking
// the signature or age.
func UnverifiedSession(v string) (map[string]any, error) {
	compressed := strings.HasPrefix(v, ".")
	v = strings.TrimPrefix(v, ".")
	payload, _, ok := strings.Cut(v, ".")
	if !ok {
		return nil, errors.New("session cookie: no signature")
	}
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(payload, "="))
	if err != nil {
		return nil, fmt.Errorf("session cookie: %w", err)
	}
	if compressed {
		zr, err := zlib.NewReader(bytes.NewReader(raw))
		if err != nil {
			return nil, fmt.Errorf("session cookie: %w", err)
		}
		raw, err = io.ReadAll(io.LimitReader(zr, maxSessionBytes+1))
		if err != nil {
			return nil, fmt.Errorf("session cookie: %w", err)
		}
		if len(raw) > maxSessionBytes {
			return nil, errors.New("session cookie: payload too large")
		}
	}
	var fields map[string]any
	if err := json.Unmarshal(raw, &fields); err != nil {
		return nil, fmt.Errorf("session cookie: %w", err)
	}
	return fields, nil
}
