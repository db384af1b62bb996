package config

import (
	"fmt"
	"net/netip"
	"net/url"
	"path"
	"strconv"
	"strings"
)

// loopbackHost stands for every name and address of the local host's
// loopback (localhost, 127.0.0.0/8, ::1) and for the unspecified address
// (0.0.0.0, ::), which reaches the local host too.
const loopbackHost = "loopback"

// normHost is a host as a server sees it, so that two spellings of one host
// compare equal: case and a trailing dot dropped, IP literals in canonical
// form (an IPv4-mapped IPv6 address as IPv4), every loopback spelling as
// loopbackHost. Names other than localhost are not resolved here (config
// validation does no I/O); cutover serve resolves them at start.
func normHost(h string) string {
	h = strings.TrimSuffix(strings.ToLower(strings.Trim(h, "[]")), ".")
	if h == "" || h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return loopbackHost
	}
	if ip, err := netip.ParseAddr(h); err == nil {
		ip = ip.Unmap()
		if ip.IsLoopback() || ip.IsUnspecified() {
			return loopbackHost
		}
		return ip.WithZone("").String()
	}
	return h
}

// httpServer is the server an http(s) URL connects to, as "host:port" with
// the host normalised (normHost) and the scheme's default port filled in:
// http://localhost:8000/ and http://127.0.0.1:8000/app give the same.
func httpServer(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("%q is not an http(s) URL", raw)
	}
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	return normHost(u.Hostname()) + ":" + port, nil
}

// redisTarget is where a Redis URL's commands land, as go-redis reads the
// URL: the server and the database.
type redisTarget struct {
	// Server is "host:port" (host normalised as by normHost, port 6379 by
	// default, an empty host being localhost) or "unix:<clean socket path>".
	Server string
	// DB is the database: the URL path, else the db query parameter, else 0.
	DB int
}

// parseRedisTarget reads a redis://, rediss:// or unix:// URL the way
// go-redis's ParseURL does, for comparing two of them.
func parseRedisTarget(raw string) (redisTarget, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return redisTarget{}, fmt.Errorf("redis URL: %w", err)
	}
	var t redisTarget
	switch u.Scheme {
	case "redis", "rediss":
		port := u.Port()
		if port == "" {
			port = "6379"
		}
		t.Server = normHost(u.Hostname()) + ":" + port
		switch f := strings.FieldsFunc(u.Path, func(r rune) bool { return r == '/' }); len(f) {
		case 0:
		case 1:
			if t.DB, err = strconv.Atoi(f[0]); err != nil {
				return redisTarget{}, fmt.Errorf("redis URL: invalid database number %q", f[0])
			}
		default:
			return redisTarget{}, fmt.Errorf("redis URL: invalid path %q", u.Path)
		}
	case "unix":
		if strings.TrimSpace(u.Path) == "" {
			return redisTarget{}, fmt.Errorf("redis URL: empty unix socket path")
		}
		t.Server = "unix:" + path.Clean(u.Path)
	default:
		return redisTarget{}, fmt.Errorf("redis URL: scheme %q is not redis, rediss or unix", u.Scheme)
	}
	if db := u.Query().Get("db"); db != "" {
		if t.DB, err = strconv.Atoi(db); err != nil {
			return redisTarget{}, fmt.Errorf("redis URL: invalid database number %q", db)
		}
	}
	return t, nil
}

func (t redisTarget) String() string { return fmt.Sprintf("%s database %d", t.Server, t.DB) }
