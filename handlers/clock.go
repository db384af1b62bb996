package handlers

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"math"
	"strconv"
	"time"
)

// isoformat is Python's datetime.isoformat() for an aware UTC datetime, as
// datetime.now(timezone.utc).isoformat() gives it: microseconds (truncated
// from t's nanoseconds) only when not zero, and "+00:00".
func isoformat(t time.Time) string {
	t = t.UTC()
	b := make([]byte, 0, 32)
	b = t.AppendFormat(b, "2006-01-02T15:04:05")
	if us := t.Nanosecond() / 1000; us != 0 {
		b = append(b, '.')
		s := strconv.Itoa(us)
		for i := len(s); i < 6; i++ {
			b = append(b, '0')
		}
		b = append(b, s...)
	}
	return string(append(b, "+00:00"...))
}

// FixedClock is the legacy test hook CUTOVER_TEST_CLOCK=seconds as a Deps.Now:
// datetime.fromtimestamp(seconds, timezone.utc), i.e. rounded half-even to the
// microsecond. The session cookie timestamp is then int(seconds), as in the
// hook, for non-negative values whose fraction does not round up to the next
// second (less than 0.9999995): one time.Time cannot be both.
func FixedClock(seconds float64) func() time.Time {
	intPart, frac := math.Modf(seconds)
	us := math.RoundToEven(frac * 1e6)
	if us >= 1e6 {
		us -= 1e6
		intPart++
	} else if us < 0 {
		us += 1e6
		intPart--
	}
	t := time.Unix(int64(intPart), int64(us)*1000).UTC()
	return func() time.Time { return t }
}

// HashedID is the legacy test hook CUTOVER_TEST_IDS=1 as a Deps.NewID:
// str(uuid.UUID(bytes=sha256(body).digest()[:16], version=4)), which sets the
// version nibble to 4 and the variant bits to RFC 4122 (10xx).
func HashedID(body []byte) string {
	sum := sha256.Sum256(body)
	return formatUUID4(sum[:16])
}

// randomID is uuid.uuid4(): 16 random bytes with the same bits set.
func randomID([]byte) string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return formatUUID4(b[:])
}

func formatUUID4(b []byte) string {
	var u [16]byte
	copy(u[:], b)
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	var s [36]byte
	hex.Encode(s[0:8], u[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], u[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], u[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], u[8:10])
	s[23] = '-'
	hex.Encode(s[24:], u[10:])
	return string(s[:])
}

type dryRunKey struct{}

// WithDryRun returns a context that makes a request served with it read real
// state (Redis, the session cookie, Bedrock) and write nowhere: no turn is
// saved and DELETE only checks that the conversation exists. The response is
// the one the request would get, for shadow comparison.
func WithDryRun(ctx context.Context) context.Context {
	return context.WithValue(ctx, dryRunKey{}, true)
}

// IsDryRun reports whether ctx came from WithDryRun.
func IsDryRun(ctx context.Context) bool {
	v, _ := ctx.Value(dryRunKey{}).(bool)
	return v
}
