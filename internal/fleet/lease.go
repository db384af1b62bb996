package fleet

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Lease errors.
var (
	// ErrLeaseHeld is an Acquire while another holder has the lease.
	ErrLeaseHeld = errors.New("lease held by another instance")
	// ErrLeaseLost is a Renew or Release of a lease that expired or was taken over.
	ErrLeaseLost = errors.New("lease lost")
)

// Lease is a named lease in the fleet store, held by one instance for a TTL
// and renewed by it, with a fencing token: a number that grows with every
// acquisition, so a write fenced by an old holder's token (Change.Fence) is
// refused once anyone else has acquired the lease. Its methods are safe for
// concurrent use.
type Lease struct {
	s      *Store
	name   string
	key    string
	holder string
	token  uint64
	ttl    time.Duration
}

// acquireScript takes lease KEYS[1] for holder ARGV[1] and ARGV[2] ms if it
// is free: the token is INCR of KEYS[2]. It returns {1, token} or {0, token
// of the holder} with the holder's name.
var acquireScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then
  return {0, tonumber(redis.call('HGET', KEYS[1], 'token')), redis.call('HGET', KEYS[1], 'holder')}
end
local tok = redis.call('INCR', KEYS[2])
redis.call('HSET', KEYS[1], 'holder', ARGV[1], 'token', tok)
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return {1, tok, ARGV[1]}
`)

// renewScript extends lease KEYS[1] to ARGV[2] ms, or deletes it when
// ARGV[2] is 0, if it is still held with token ARGV[1]. It returns 1 or 0.
var renewScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], 'token') ~= ARGV[1] then return 0 end
if ARGV[2] == '0' then redis.call('DEL', KEYS[1]) else redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 1
`)

// Acquire takes the lease name for ttl on behalf of this instance, with a
// new fencing token. It fails with ErrLeaseHeld (naming the holder) while
// anyone holds it, this instance included.
func (s *Store) Acquire(ctx context.Context, name string, ttl time.Duration) (*Lease, error) {
	if ttl < time.Millisecond {
		return nil, fmt.Errorf("lease %q: ttl %s is below 1ms", name, ttl)
	}
	ctx, cancel := context.WithTimeout(ctx, s.opt.Timeout)
	defer cancel()
	key := s.key("lease", name)
	res, err := acquireScript.Run(ctx, s.rdb, []string{key, key + ":token"}, s.opt.Instance, ttl.Milliseconds()).Slice()
	if err != nil {
		return nil, s.unavailable(fmt.Errorf("acquire lease %q: %w", name, err))
	}
	ok, _ := res[0].(int64)
	tok, _ := res[1].(int64)
	holder, _ := res[2].(string)
	if ok != 1 {
		return nil, fmt.Errorf("lease %q: %w: %s (token %d)", name, ErrLeaseHeld, holder, tok)
	}
	return &Lease{s: s, name: name, key: key, holder: s.opt.Instance, token: uint64(tok), ttl: ttl}, nil
}

// Name is the lease's name.
func (l *Lease) Name() string { return l.name }

// Token is the fencing token of this holding.
func (l *Lease) Token() uint64 { return l.token }

// TTL is the lease's time to live after each renewal.
func (l *Lease) TTL() time.Duration { return l.ttl }

// Renew extends the lease by its TTL from now; ErrLeaseLost if it expired
// or was taken over meanwhile (stop acting as the holder at once).
func (l *Lease) Renew(ctx context.Context) error { return l.renew(ctx, l.ttl.Milliseconds(), "renew") }

// Release gives the lease up; ErrLeaseLost if it was no longer held.
func (l *Lease) Release(ctx context.Context) error { return l.renew(ctx, 0, "release") }

func (l *Lease) renew(ctx context.Context, ms int64, op string) error {
	ctx, cancel := context.WithTimeout(ctx, l.s.opt.Timeout)
	defer cancel()
	n, err := renewScript.Run(ctx, l.s.rdb, []string{l.key}, strconv.FormatUint(l.token, 10), ms).Int()
	if err != nil {
		return l.s.unavailable(fmt.Errorf("%s lease %q: %w", op, l.name, err))
	}
	if n != 1 {
		return fmt.Errorf("%s lease %q token %d: %w", op, l.name, l.token, ErrLeaseLost)
	}
	return nil
}

// LeaseHolder reports who holds the lease name and with which token; an
// empty holder means the lease is free.
func (s *Store) LeaseHolder(ctx context.Context, name string) (holder string, token uint64, err error) {
	ctx, cancel := context.WithTimeout(ctx, s.opt.Timeout)
	defer cancel()
	vals, err := s.rdb.HMGet(ctx, s.key("lease", name), "holder", "token").Result()
	if err != nil {
		return "", 0, s.unavailable(fmt.Errorf("lease %q: %w", name, err))
	}
	holder, _ = vals[0].(string)
	tokStr, _ := vals[1].(string)
	token, _ = strconv.ParseUint(tokStr, 10, 64)
	return holder, token, nil
}
