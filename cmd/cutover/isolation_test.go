package main

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"

	"github.com/cutover/cutover/internal/testenv"
)

func TestSameHTTPServer(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{"http://127.0.0.1:8000/", "http://localhost:8000/isolated", true},
		{"http://127.0.0.1", "http://localhost:80", true},
		{"http://[::1]:8000", "http://127.0.0.1:8000", true},
		{"http://0.0.0.0:8000", "http://127.0.0.1:8000", true},
		{"http://127.0.0.1:8000", "http://127.0.0.1:8001", false},
		{"http://127.0.0.1:8000", "http://203.0.113.9:8000", false},
		{"https://127.0.0.1", "http://127.0.0.1:443", true},
	}
	// An address of one of this host's interfaces is this host too.
	if ifaddrs, err := net.InterfaceAddrs(); err == nil {
		for _, ia := range ifaddrs {
			if p, err := netip.ParsePrefix(ia.String()); err == nil && !p.Addr().IsLoopback() && p.Addr().Is4() {
				tests = append(tests, struct {
					a, b string
					want bool
				}{"http://" + p.Addr().String() + ":8000", "http://127.0.0.1:8000", true})
			}
		}
	}
	for _, tt := range tests {
		got, err := sameHTTPServer(context.Background(), tt.a, tt.b)
		if err != nil || got != tt.want {
			t.Errorf("sameHTTPServer(%q, %q) = %v, %v; want %v", tt.a, tt.b, got, err, tt.want)
		}
	}
}

// serve refuses to start when the isolated shadow targets are not proven
// apart from production: the isolated Redis unreachable, or the production
// Redis under a name config validation cannot see through (this host's name).
func TestServeRefusesUnprovenIsolation(t *testing.T) {
	prod := testenv.StartRedis(t)
	port := prod.Addr()[strings.LastIndexByte(prod.Addr(), ':'):]
	tests := []struct{ name, isoRedis, want string }{
		{"isolated redis unreachable", "redis://127.0.0.1:1/0", "write to the isolated redis"},
		{"isolated redis is production", "", "the isolated redis is the production redis"},
	}
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	addrs, err := net.DefaultResolver.LookupNetIP(context.Background(), "ip4", host)
	if err != nil || len(addrs) == 0 || !addrs[0].IsLoopback() {
		// The second case needs a name of the loopback that is not
		// localhost; this host's name is one on most machines.
		t.Fatalf("this host's name %q does not resolve to the loopback (%v %v): the test needs one", host, addrs, err)
	}
	tests[1].isoRedis = "redis://" + host + port + "/0"
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeYAML(t, fmt.Sprintf(`listen: {addr: %s}
admin: {addr: %s}
legacy: {url: http://127.0.0.1:1}
native:
  secret_key: isolation-test-secret
  redis_url: %s
shadow:
  isolated_legacy_url: http://127.0.0.1:2
  isolated_redis_url: %s
`, freeAddr(t), freeAddr(t), prod.URL(), tt.isoRedis))
			if code, out := serveRefused(t, path); code != 1 || !strings.Contains(out, "refusing to start") || !strings.Contains(out, tt.want) {
				t.Errorf("serve exited %d, want 1 with %q:\n%s", code, tt.want, out)
			}
		})
	}
}
