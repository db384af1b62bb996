package conformance

import (
	"bytes"
	"compress/zlib"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/cutover/cutover/compat"
	"github.com/cutover/cutover/internal/testenv"
)

// relaxCompressedCookies applies the one documented relaxation of a
// CGO_ENABLED=0 build (compat.ZlibByteExact false: Go's zlib, not the system
// one, compresses large sessions). A native Set-Cookie that differs from the
// legacy one is accepted, and replaced by the legacy value so that Diff
// passes, only if it differs in nothing but the deflate stream: same cookie
// attributes, both payloads compressed, the same inflated payload bytes, the
// same timestamp, a valid signature under secret, and the installed Flask
// opens it to the same session as the legacy cookie. Otherwise the headers
// are left as they are and Diff reports them. It returns what it accepted,
// for the log.
func relaxCompressedCookies(secret string, clock float64, l, n *Capture) ([]string, error) {
	lv, nv := l.Header.Values("Set-Cookie"), n.Header.Values("Set-Cookie")
	if len(lv) != len(nv) {
		return nil, nil
	}
	var accepted []string
	fixed := append([]string(nil), nv...)
	for i := range lv {
		if lv[i] == nv[i] {
			continue
		}
		if err := sameCompressedSession(secret, clock, lv[i], nv[i]); err != nil {
			return nil, fmt.Errorf("Set-Cookie %d: %w", i, err)
		}
		fixed[i] = lv[i]
		accepted = append(accepted, nv[i])
	}
	if len(accepted) > 0 {
		n.Header["Set-Cookie"] = fixed
	}
	return accepted, nil
}

func sameCompressedSession(secret string, clock float64, legacy, native string) error {
	lkv, lattrs, _ := strings.Cut(legacy, ";")
	nkv, nattrs, _ := strings.Cut(native, ";")
	lname, lval, _ := strings.Cut(lkv, "=")
	nname, nval, _ := strings.Cut(nkv, "=")
	if lname != nname || lattrs != nattrs {
		return errors.New("cookie name or attributes differ")
	}
	if !strings.HasPrefix(lval, ".") || !strings.HasPrefix(nval, ".") {
		return errors.New("not both compressed")
	}
	lparts, nparts := strings.Split(lval[1:], "."), strings.Split(nval[1:], ".")
	if len(lparts) != 3 || len(nparts) != 3 {
		return errors.New("not payload.timestamp.signature")
	}
	if lparts[1] != nparts[1] {
		return fmt.Errorf("timestamps differ: legacy %s, native %s", lparts[1], nparts[1])
	}
	lraw, err := inflate(lparts[0])
	if err != nil {
		return fmt.Errorf("legacy payload: %w", err)
	}
	nraw, err := inflate(nparts[0])
	if err != nil {
		return fmt.Errorf("native payload: %w", err)
	}
	if !bytes.Equal(lraw, nraw) {
		return fmt.Errorf("inflated payloads differ:\n  legacy %q\n  native %q", lraw, nraw)
	}
	now := time.Unix(int64(clock), 0)
	codec := &compat.SessionCodec{SecretKey: secret, Now: func() time.Time { return now }}
	if _, err := codec.Decode(nval); err != nil {
		return fmt.Errorf("native cookie does not verify: %w", err)
	}
	fl, err := flaskOpen(secret, int64(clock), lval, nval)
	if err != nil {
		return err
	}
	if fl[0] != fl[1] {
		return fmt.Errorf("Flask opens them differently:\n  legacy %s\n  native %s", fl[0], fl[1])
	}
	return nil
}

// inflate is base64url (no padding, as itsdangerous writes it) then zlib.
func inflate(s string) ([]byte, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return nil, err
	}
	r, err := zlib.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	return io.ReadAll(io.LimitReader(r, 1<<20))
}

// flaskOpen has the installed Flask open each cookie with secret at now
// (compat/testdata/pyjson_oracle.py's session op: the serializer of
// SecureCookieSessionInterface, as open_session uses it) and returns each
// session in the oracle's typed form; a cookie Flask refuses is an error.
func flaskOpen(secret string, now int64, cookies ...string) ([]string, error) {
	root, err := testenv.RepoRoot()
	if err != nil {
		return nil, err
	}
	var in bytes.Buffer
	for _, c := range cookies {
		line, err := json.Marshal(map[string]any{"op": "session", "cookie": c, "now": now, "secret": secret})
		if err != nil {
			return nil, err
		}
		in.Write(append(line, '\n'))
	}
	cmd := exec.Command("python3", filepath.Join(root, "compat", "testdata", "pyjson_oracle.py"))
	cmd.Stdin = &in
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("python3 oracle: %w: %s", err, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != len(cookies) {
		return nil, fmt.Errorf("python3 oracle answered %d lines for %d cookies", len(lines), len(cookies))
	}
	typed := make([]string, len(lines))
	for i, line := range lines {
		var resp struct {
			OK    bool            `json:"ok"`
			Value json.RawMessage `json:"value"`
			Error string          `json:"error"`
		}
		if err := json.Unmarshal([]byte(line), &resp); err != nil {
			return nil, fmt.Errorf("python3 oracle %q: %w", line, err)
		}
		if !resp.OK {
			return nil, fmt.Errorf("Flask refuses cookie %s: %s", cookies[i], resp.Error)
		}
		typed[i] = string(resp.Value)
	}
	return typed, nil
}
