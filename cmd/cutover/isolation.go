package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"

	"github.com/cutover/cutover/config"
	"github.com/cutover/cutover/handlers"
	"github.com/cutover/cutover/shadow"
)

// checkIsolation proves at start what config validation can only check by
// spelling: that the isolated shadow targets are not the production ones.
// The isolated legacy app must not resolve to the production one's address
// and port (every local address counting as one), and the isolated Redis
// must pass shadow.CheckIsolated's canary. Any failure, an unreachable
// isolated target included, is returned: serve then refuses to start rather
// than let a shadow-safe route write to production.
func checkIsolation(ctx context.Context, cfg *config.Config) error {
	var errs []error
	if iso := cfg.Shadow.IsolatedLegacyURL; iso != "" {
		same, err := sameHTTPServer(ctx, cfg.Legacy.URL, iso)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("shadow.isolated_legacy_url: %w", err))
		case same:
			errs = append(errs, errors.New("shadow.isolated_legacy_url resolves to the production legacy app (legacy.url): shadowed writes would reach production"))
		}
	}
	if iso := cfg.Shadow.IsolatedRedisURL; iso != "" {
		if err := checkIsolatedRedis(ctx, cfg.Native.RedisURL, iso); err != nil {
			errs = append(errs, fmt.Errorf("shadow.isolated_redis_url: %w", err))
		}
	}
	return errors.Join(errs...)
}

func checkIsolatedRedis(ctx context.Context, prodURL, isoURL string) error {
	prod, err := handlers.NewRedisClient(prodURL)
	if err != nil {
		return err
	}
	defer prod.Close()
	iso, err := handlers.NewRedisClient(isoURL)
	if err != nil {
		return err
	}
	defer iso.Close()
	return shadow.CheckIsolated(ctx, prod, iso)
}

// sameHTTPServer says whether two http(s) URLs reach the same address and
// port once their hosts are resolved, any address of this host (loopback,
// unspecified, or one of its interfaces') counting as the same.
func sameHTTPServer(ctx context.Context, a, b string) (bool, error) {
	aAddrs, aPort, err := resolveURL(ctx, a)
	if err != nil {
		return false, err
	}
	bAddrs, bPort, err := resolveURL(ctx, b)
	if err != nil || aPort != bPort {
		return false, err
	}
	for k := range aAddrs {
		if bAddrs[k] {
			return true, nil
		}
	}
	return false, nil
}

// resolveURL resolves an http(s) URL's host to a set of address keys ("local"
// for any address of this host) and its port (the scheme's default if none).
func resolveURL(ctx context.Context, raw string) (map[string]bool, string, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Hostname() == "" {
		return nil, "", fmt.Errorf("%q is not an http(s) URL", raw)
	}
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", u.Hostname())
	if err != nil {
		return nil, "", fmt.Errorf("resolve %s: %w", u.Hostname(), err)
	}
	local := localAddrs()
	keys := make(map[string]bool, len(addrs))
	for _, a := range addrs {
		a = a.Unmap().WithZone("")
		if a.IsLoopback() || a.IsUnspecified() || local[a] {
			keys["local"] = true
		} else {
			keys[a.String()] = true
		}
	}
	return keys, port, nil
}

// localAddrs are the addresses of this host's interfaces.
func localAddrs() map[netip.Addr]bool {
	out := map[netip.Addr]bool{}
	ifaddrs, err := net.InterfaceAddrs()
	if err != nil {
		return out
	}
	for _, ia := range ifaddrs {
		if p, err := netip.ParsePrefix(ia.String()); err == nil {
			out[p.Addr().Unmap().WithZone("")] = true
		}
	}
	return out
}
