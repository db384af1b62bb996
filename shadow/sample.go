package shadow

import "hash/fnv"

// Buckets is the number of sampling buckets; rates are in basis points of it.
const Buckets = 10000

// Sample reports whether the request identified by key is shadowed on a route
// whose share is rateBP basis points (0..10000). The decision is a pure
// function of (routeSalt, key, rateBP): the same request key is always sampled
// the same way, and raising the rate only adds keys (a key sampled at 10 %
// stays sampled at 20 %). No random draw is made, so replays are reproducible.
// Rates at or below 0 sample nothing; rates at or above 10000 sample all.
func Sample(routeSalt, key string, rateBP int) bool {
	if rateBP <= 0 {
		return false
	}
	if rateBP >= Buckets {
		return true
	}
	return Bucket(routeSalt, key) < uint32(rateBP)
}

// Bucket maps (routeSalt, key) to one of Buckets buckets with 64-bit FNV-1a.
// The salt keeps routes independent: the keys shadowed on one route are not
// the keys shadowed on another.
func Bucket(routeSalt, key string) uint32 {
	h := fnv.New64a()
	h.Write([]byte(routeSalt))
	h.Write([]byte{0})
	h.Write([]byte(key))
	return uint32(h.Sum64() % Buckets)
}
