package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"github.com/KimMachineGun/automemlimit/memlimit"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/cutover/cutover/config"
	"github.com/cutover/cutover/internal/tracing"
	"github.com/cutover/cutover/proxy"
)

// version is this build, shown in the fleet view; set it with
// -ldflags "-X main.version=...".
var version = "dev"

func init() {
	register("serve", "run the proxy (traffic, admin API, metrics, config hot reload)", serveCmd)
	register("check-config", "validate a config file (every problem at once) and exit", checkConfigCmd)
}

func serveCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("config", os.Getenv("CUTOVER_CONFIG"), "config `file` (YAML; env CUTOVER_CONFIG); empty means environment and defaults only")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := config.Load(*file)
	if err != nil {
		return err
	}
	if err := requireSecretKey(cfg); err != nil {
		return err
	}
	ictx, cancel := context.WithTimeout(ctx, 10*time.Second)
	err = checkIsolation(ictx, cfg)
	cancel()
	if err != nil {
		return fmt.Errorf("shadow targets are not proven isolated from production, refusing to start: %w", err)
	}
	log, lw := newBufferedLogger(stdout, cfg.Log.Level)
	defer lw.Close()
	logRuntime(log, tuneRuntime(cfg.Runtime, memlimit.FromCgroup))
	tr, err := tracing.New(ctx, cfg.Tracing, log)
	if err != nil {
		return err
	}
	defer func() { // last: the spans of the drain are exported too
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := tr.Shutdown(sctx); err != nil {
			log.Warn("tracing: spans not exported at exit", "error", err)
		}
	}()
	native, closeNative, err := buildNative(ctx, cfg, log, tr)
	if err != nil {
		return err
	}
	defer closeNative()
	iso, closeIso, err := buildIsolatedNative(ctx, cfg, log, tr)
	if err != nil {
		return err
	}
	defer closeIso()
	srv, err := proxy.New(cfg, proxy.Options{Native: native, Logger: log, Shadow: proxy.ShadowOptions{IsolatedNative: iso}, Version: version, Tracer: tr})
	if err != nil {
		return err
	}
	return runServer(ctx, srv, log)
}

// runServer runs srv until ctx is done (SIGTERM/SIGINT), reloading the
// config on SIGHUP.
func runServer(ctx context.Context, srv *proxy.Server, log *slog.Logger) error {
	if err := srv.Listen(); err != nil {
		return err
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return srv.Run(ctx) })
	g.Go(func() error {
		for {
			select {
			case <-gctx.Done():
				return nil
			case <-ctx.Done():
				return nil
			case <-hup:
				if err := srv.Reload(); err != nil {
					log.Error("SIGHUP reload", "error", err)
				}
			}
		}
	})
	return g.Wait()
}

func newLogger(w io.Writer, level string) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(strings.ToUpper(level)))
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l}))
}

func checkConfigCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) != 1 {
		fmt.Fprintln(stderr, "usage: cutover check-config FILE")
		return errUsage
	}
	// Every problem at once: the file's own (decode and validation) and
	// those that need the native handlers (a share on a route without one).
	cfg, err := config.Inspect(args[0])
	if cfg == nil {
		return err
	}
	endpoints, nerr := nativeEndpoints(cfg)
	if nerr != nil {
		return errors.Join(err, nerr)
	}
	if err := errors.Join(err, proxy.Check(cfg, endpoints)); err != nil {
		return err
	}
	native := 0
	for _, r := range cfg.Routes {
		if r.Share > 0 {
			native++
		}
	}
	fmt.Fprintf(stdout, "%s: ok (%d routes, %d with a native share)\n", args[0], len(cfg.Routes), native)
	return nil
}
