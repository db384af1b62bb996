package handlers

import (
	"context"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/redis/go-redis/v9"

	"github.com/cutover/cutover/compat"
)

// Store is what the handlers need of Redis: the commands the legacy app uses
// on its conversation lists. *redis.Client, *redis.ClusterClient and
// redis.UniversalClient satisfy it.
type Store interface {
	LRange(ctx context.Context, key string, start, stop int64) *redis.StringSliceCmd
	RPush(ctx context.Context, key string, values ...any) *redis.IntCmd
	Del(ctx context.Context, keys ...string) *redis.IntCmd
	Exists(ctx context.Context, keys ...string) *redis.IntCmd
}

var _ Store = (redis.UniversalClient)(nil)

// errStoreDown is the legacy REDIS_DOWN (redis-py's ConnectionError or
// TimeoutError): the store could not be reached. Errors the server answered
// with (WRONGTYPE...) are not it: in the legacy app they escape as a 500.
var errStoreDown = errors.New("conversation store unavailable")

// storeErr classifies a go-redis error as the legacy app's exception would be.
func storeErr(op string, err error) error {
	var reply redis.Error
	if errors.As(err, &reply) {
		return fmt.Errorf("redis %s: %w", op, err)
	}
	return fmt.Errorf("redis %s: %w: %w", op, errStoreDown, err)
}

// NewRedisClient builds the go-redis client for url (REDIS_URL; "" means
// redis://127.0.0.1:6379/0) like the legacy redis-py 4.3 client: 2s to
// connect, 5s per socket read or write, one dial attempt and no command
// retries, so a Redis that is down is reported at once (503). One
// difference remains: after many failed dials go-redis probes the server
// once a second, so recovery can lag a restarted Redis by up to a second.
func NewRedisClient(url string) (*redis.Client, error) {
	if url == "" {
		url = "redis://127.0.0.1:6379/0"
	}
	opt, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("redis url: %w", err)
	}
	opt.DialTimeout = 2 * time.Second
	opt.ReadTimeout = 5 * time.Second
	opt.WriteTimeout = 5 * time.Second
	opt.DialerRetries = 1
	opt.MaxRetries = -1
	return redis.NewClient(opt), nil
}

func conversationKey(id string) string { return "conversation:" + id }

// turn is one stored message as json.loads gives it back.
type turn struct {
	role, content, createdAt any
}

// errBadTurn is a stored element the legacy code cannot read (json.loads or
// a missing key raising): a 500 there.
var errBadTurn = errors.New("stored turn is not a JSON object with role, content and created_at")

// parseTurn is json.loads(item) then turn["role"], turn["content"] (and
// turn["created_at"] when withCreated) as the legacy code indexes them.
func parseTurn(item string, withCreated bool) (turn, error) {
	// redis-py decodes replies as strict UTF-8 (decode_responses=True).
	if !utf8.ValidString(item) {
		return turn{}, errBadTurn
	}
	v, err := compat.Loads(item)
	if err != nil {
		return turn{}, fmt.Errorf("%w: %w", errBadTurn, err)
	}
	obj, ok := v.(compat.Object)
	if !ok {
		return turn{}, errBadTurn
	}
	var t turn
	var okRole, okContent, okCreated bool
	t.role, okRole = obj.Get("role")
	t.content, okContent = obj.Get("content")
	if withCreated {
		t.createdAt, okCreated = obj.Get("created_at")
	} else {
		okCreated = true
	}
	if !okRole || !okContent || !okCreated {
		return turn{}, errBadTurn
	}
	return t, nil
}

// loadHistory is the legacy load_history: the last HistoryTurns pairs as
// Bedrock messages.
func (a *App) loadHistoryKey(ctx context.Context, key string) ([]any, error) {
	if a.cfg.HistoryTurns <= 0 {
		return []any{}, nil
	}
	items, err := a.store.LRange(ctx, key, -2*int64(a.cfg.HistoryTurns), -1).Result()
	if err != nil {
		return nil, storeErr("lrange", err)
	}
	messages := make([]any, 0, len(items)+1)
	for _, item := range items {
		t, err := parseTurn(item, false)
		if err != nil {
			return nil, err
		}
		messages = append(messages, compat.Object{{Key: "role", Value: t.role}, {Key: "content", Value: t.content}})
	}
	return messages, nil
}

// saveTurns is the legacy save_turns: both turns in one RPUSH, each
// json.dumps({"role", "content", "created_at"}) with Python's default
// separators. In dry-run mode nothing is written.
func (a *App) saveTurns(ctx context.Context, key, userText, assistantText string) error {
	now := isoformat(a.now())
	user, err := compat.Dumps(compat.Object{{Key: "role", Value: "user"}, {Key: "content", Value: userText}, {Key: "created_at", Value: now}}, compat.DumpOptions{})
	if err != nil {
		return err
	}
	assistant, err := compat.Dumps(compat.Object{{Key: "role", Value: "assistant"}, {Key: "content", Value: assistantText}, {Key: "created_at", Value: now}}, compat.DumpOptions{})
	if err != nil {
		return err
	}
	if IsDryRun(ctx) {
		return nil
	}
	if err := a.store.RPush(ctx, key, user, assistant).Err(); err != nil {
		return storeErr("rpush", err)
	}
	return nil
}
