//go:build cgo

package compat

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os/exec"
	"strings"
	"sync"
	"testing"
)

// TestZlibCompressMatchesCPython compresses payloads of many sizes and
// kinds, one after another and from several goroutines at once (so the
// reused deflate streams carry every earlier payload's state into
// deflateReset), and compares each with CPython's zlib.compress.
func TestZlibCompressMatchesCPython(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var payloads [][]byte
	for _, n := range []int{0, 1, 2, 17, 100, 300, 1000, 4000, 4096, 10000, 70000, 300000} {
		random := make([]byte, n)
		for i := range random {
			random[i] = byte(rng.UintN(256))
		}
		text := []byte(strings.Repeat(`{"conversation_id":"c-`+fmt.Sprint(n)+`","n":1}`, n/20+1))[:n]
		payloads = append(payloads, random, text)
	}
	var in []string
	for _, p := range payloads {
		in = append(in, base64.StdEncoding.EncodeToString(p))
	}
	arg, _ := json.Marshal(in)
	cmd := exec.Command("python3", "-c", `import base64, json, sys, zlib
print(json.dumps([base64.b64encode(zlib.compress(base64.b64decode(p))).decode() for p in json.load(sys.stdin)]))`)
	cmd.Stdin = bytes.NewReader(arg)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("python3 zlib.compress: %v", err)
	}
	var want []string
	if err := json.Unmarshal(out, &want); err != nil || len(want) != len(payloads) {
		t.Fatalf("python3 answered %d results (%v) for %d payloads", len(want), err, len(payloads))
	}
	check := func(i int) error {
		got, err := zlibCompress(payloads[i])
		if err != nil {
			return fmt.Errorf("payload %d (%d bytes): %v", i, len(payloads[i]), err)
		}
		if w, _ := base64.StdEncoding.DecodeString(want[i]); !bytes.Equal(got, w) {
			return fmt.Errorf("payload %d (%d bytes): %d compressed bytes differ from CPython's %d", i, len(payloads[i]), len(got), len(w))
		}
		return nil
	}
	for round := range 3 {
		for i := range payloads {
			if err := check((i + round) % len(payloads)); err != nil {
				t.Fatal(err)
			}
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8*len(payloads))
	for g := range 8 {
		wg.Go(func() {
			for i := range payloads {
				errs <- check((i + g) % len(payloads))
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}
