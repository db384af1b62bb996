package handlers

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// python runs a python3 snippet that prints one JSON value.
func python(t *testing.T, script string, out any) {
	t.Helper()
	cmd := exec.Command("python3", "-c", script)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	b, err := cmd.Output()
	if err != nil {
		t.Fatalf("python3: %v\n%s", err, stderr.String())
	}
	if err := json.Unmarshal(b, out); err != nil {
		t.Fatalf("python3 output %q: %v", b, err)
	}
}

// TestClockAndIDsMatchPython checks FixedClock+isoformat, the session
// timestamp and HashedID against the legacy test hooks' Python code.
func TestClockAndIDsMatchPython(t *testing.T) {
	// Not 1700000000.9999996: datetime rounds it up to the next second while
	// the cookie keeps int(seconds), which one time.Time cannot express
	// (documented at FixedClock).
	clocks := []float64{0, 1, 1795726800, 1795726800.25, 1795726800.5, 1700000000.123456, 1700000000.1234565, 1700000000.9999994, 1e9 + 1e-7, 1795726800.000001}
	bodies := []string{"", "{}", `{"message": "hi"}`, "\xff\xfe", strings.Repeat("x", 1000)}

	var args []string
	for _, c := range clocks {
		args = append(args, strconv.FormatFloat(c, 'g', -1, 64))
	}
	var hexBodies []string
	for _, b := range bodies {
		hexBodies = append(hexBodies, `"`+hex.EncodeToString([]byte(b))+`"`)
	}
	script := `
import hashlib, json, uuid
from datetime import datetime, timezone
clocks = [` + strings.Join(args, ", ") + `]
bodies = [bytes.fromhex(b) for b in [` + strings.Join(hexBodies, ", ") + `]]
print(json.dumps({
  "iso": [datetime.fromtimestamp(c, timezone.utc).isoformat() for c in clocks],
  "ts": [int(c) for c in clocks],
  "ids": [str(uuid.UUID(bytes=hashlib.sha256(b).digest()[:16], version=4)) for b in bodies],
}))`
	var want struct {
		ISO []string
		TS  []int64
		IDs []string
	}
	python(t, script, &want)
	for i, c := range clocks {
		now := FixedClock(c)()
		if got := isoformat(now); got != want.ISO[i] {
			t.Errorf("isoformat(FixedClock(%v)) = %s, want %s", c, got, want.ISO[i])
		}
		if got := now.Unix(); got != want.TS[i] {
			t.Errorf("FixedClock(%v) timestamp %d, want %d", c, got, want.TS[i])
		}
	}
	for i, b := range bodies {
		if got := HashedID([]byte(b)); got != want.IDs[i] {
			t.Errorf("HashedID(%q) = %s, want %s", b, got, want.IDs[i])
		}
	}
}

func TestRandomIDIsUUID4(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		id := randomID(nil)
		if len(id) != 36 || id[14] != '4' || !strings.ContainsRune("89ab", rune(id[19])) {
			t.Fatalf("randomID() = %s is not a uuid4", id)
		}
		if seen[id] {
			t.Fatalf("randomID() repeated %s", id)
		}
		seen[id] = true
	}
}

func TestIsoformatRealClock(t *testing.T) {
	tests := []struct {
		give time.Time
		want string
	}{
		{time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), "2026-01-02T03:04:05+00:00"},
		{time.Date(2026, 1, 2, 3, 4, 5, 1999, time.UTC), "2026-01-02T03:04:05.000001+00:00"},
		{time.Date(2026, 1, 2, 3, 4, 5, 999, time.UTC), "2026-01-02T03:04:05+00:00"},
		{time.Date(2026, 1, 2, 5, 4, 5, 120000000, time.FixedZone("x", 2*3600)), "2026-01-02T03:04:05.120000+00:00"},
	}
	for _, tt := range tests {
		if got := isoformat(tt.give); got != tt.want {
			t.Errorf("isoformat(%v) = %s, want %s", tt.give, got, tt.want)
		}
	}
}

func TestDryRunContext(t *testing.T) {
	if IsDryRun(context.Background()) {
		t.Error("background context is dry-run")
	}
	if !IsDryRun(WithDryRun(context.Background())) {
		t.Error("WithDryRun context is not dry-run")
	}
}
