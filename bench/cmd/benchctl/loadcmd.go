package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/cutover/cutover/bench/load"
)

// loadCmd runs one load and writes its result as JSON to -out (or stdout).
func loadCmd(args []string) error {
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	var c load.Config
	var mode, out string
	fs.StringVar(&c.BaseURL, "url", "", "base URL of the target (127.0.0.1 only)")
	fs.IntVar(&c.Users, "users", 10, "concurrent users (closed loop); open: the population (0 = rate × 11)")
	fs.StringVar(&mode, "mode", string(load.ModeMix), "mix, hold-stream, hold-chat or open")
	fs.Float64Var(&c.Rate, "rate", 0, "open: arrivals per second")
	fs.IntVar(&c.Pool, "pool", 0, "open: most connections to the target (0 = 1024)")
	fs.StringVar(&c.Arrivals, "arrivals", "", "open: poisson (default) or uniform")
	fs.DurationVar(&c.Ramp, "ramp", 0, "spread user starts over this long; the window opens after it")
	fs.DurationVar(&c.Duration, "duration", 0, "measurement window")
	fs.DurationVar(&c.Timeout, "timeout", 0, "per-request timeout (0 = 30s)")
	fs.IntVar(&c.ChatPct, "chat", 70, "percent POST /chat")
	fs.IntVar(&c.StreamPct, "stream", 20, "percent POST /chat/stream (rest: GET /conversations/<id>)")
	fs.DurationVar(&c.TTFT, "ttft", 0, "the stub's time to first token (for model latency)")
	fs.Float64Var(&c.TPS, "tps", 0, "the stub's tokens per second (for model latency)")
	fs.StringVar(&c.Salt, "salt", "bench", "distinguishes conversation ids between runs")
	fs.StringVar(&out, "out", "", "write the JSON result here (default stdout)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	c.Mode = load.Mode(mode)
	if err := checkLoopback(c.BaseURL); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	began := time.Now()
	res, err := load.Run(ctx, c)
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		res.CPUSeconds = time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
		res.MaxRSSKiB = ru.Maxrss // kilobytes on Linux
	}
	res.ElapsedS = time.Since(began).Seconds()
	b, _ := json.MarshalIndent(res, "", "  ")
	b = append(b, '\n')
	if out == "" {
		_, err = os.Stdout.Write(b)
		return err
	}
	return os.WriteFile(out, b, 0o644)
}
