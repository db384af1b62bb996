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

// RedisOptions configures NewRedis.
type RedisOptions struct {
	// URL is REDIS_URL. Empty means "redis://127.0.0.1:6379/0".
	URL string
	// PoolSize bounds the connections to Redis. A command waits for a free
	// connection up to PoolTimeout, then fails as the store being down (503).
	// Each request holds a connection only for one command at a time, so the
	// pool is a concurrency limit on Redis commands, not on requests; it
	// must not be what limits a busy instance (go-redis's own default, 10 per
	// CPU, was: 2,000 users on 2 cores waited out its timeout). Zero means 256.
	PoolSize int
	// PoolTimeout is the longest wait for a free connection. Zero means 6s
	// (go-redis's default: the 5s read timeout plus one second).
	PoolTimeout time.Duration
}

// NewRedisClient is NewRedis with the default pool.
func NewRedisClient(url string) (*redis.Client, error) {
	return NewRedis(RedisOptions{URL: url})
}

// NewRedis builds the go-redis client like the legacy redis-py 4.3 client:
// 2s to connect, 5s per socket read or write, one dial attempt and no
// command retries, so a Redis that is down is reported at once (503). One
// difference remains: after many failed dials go-redis probes the server
// once a second, so recovery can lag a restarted Redis by up to a second.
// Connection buffers are 4 KiB each way instead of go-redis's 32 KiB: a
// history read is a few KiB, and larger replies are read through the buffer
// all the same.
func NewRedis(o RedisOptions) (*redis.Client, error) {
	if o.URL == "" {
		o.URL = "redis://127.0.0.1:6379/0"
	}
	if o.PoolSize == 0 {
		o.PoolSize = 256
	}
	if o.PoolTimeout == 0 {
		o.PoolTimeout = 6 * time.Second
	}
	if o.PoolSize < 0 || o.PoolTimeout < 0 {
		return nil, fmt.Errorf("redis pool size %d and timeout %s must not be negative", o.PoolSize, o.PoolTimeout)
	}
	opt, err := redis.ParseURL(o.URL)
	if err != nil {
		return nil, fmt.Errorf("redis url: %w", err)
	}
	opt.DialTimeout = 2 * time.Second
	opt.ReadTimeout = 5 * time.Second
	opt.WriteTimeout = 5 * time.Second
	opt.DialerRetries = 1
	opt.MaxRetries = -1
	opt.PoolSize = o.PoolSize
	opt.PoolTimeout = o.PoolTimeout
	opt.ReadBufferSize = 4 << 10
	opt.WriteBufferSize = 4 << 10
	return redis.NewClient(opt), nil
}

func conversationKey(id string) string { return "conversation:" + id }

// errKeyEncoding is a key redis-py cannot send: it encodes str keys as strict
// UTF-8, and a session value can hold lone surrogates (UnicodeEncodeError,
// not a REDIS_DOWN error: a 500 in the legacy app, or a dropped stream).
var errKeyEncoding = errors.New("conversation key is not encodable as UTF-8")

func checkKey(key string) error {
	if !utf8.ValidString(key) {
		return errKeyEncoding
	}
	return nil
}

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
	if err := checkKey(key); err != nil {
		return nil, err
	}
	items, err := a.store.LRange(ctx, key, -2*int64(a.cfg.HistoryTurns), -1).Result()
	if err != nil {
		return nil, storeErr("lrange", err)
	}
	messages := make([]any, 0, len(items)+1)
	for _, item := range items {
		if t, ok := fastTurn(item); ok {
			messages = append(messages, compat.Object{{Key: "role", Value: t.role}, {Key: "content", Value: t.content}})
			continue
		}
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
	if err := checkKey(key); err != nil {
		return err
	}
	if IsDryRun(ctx) {
		return nil
	}
	noteWrite(ctx)
	if err := a.store.RPush(ctx, key, user, assistant).Err(); err != nil {
		return storeErr("rpush", err)
	}
	return nil
}
