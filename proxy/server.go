package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"
	"golang.org/x/sync/errgroup"

	"github.com/cutover/cutover/config"
	"github.com/cutover/cutover/internal/fleet"
	"github.com/cutover/cutover/internal/tracing"
)

// Options are the optional parts of a Server.
type Options struct {
	// Native is the native handlers. Nil means none (pure pass-through).
	Native NativeApp
	// Shadow holds the shadowing parts built outside the proxy (the isolated
	// native app). The zero value shadows without them.
	Shadow ShadowOptions
	// Logger is the process logger. Nil means slog.Default().
	Logger *slog.Logger
	// Now is the clock of the circuit breakers (open timeouts, intervals,
	// Retry-After). Nil means time.Now; tests move one by hand.
	Now func() time.Time
	// Tracer makes the spans of each request, its legacy round trip, its
	// native handler and its shadow calls. Nil means tracing is off.
	Tracer *tracing.Tracer
	// TrafficListener and AdminListener, if set, are used instead of
	// listening on cfg.Listen.Addr and cfg.Admin.Addr (tests pass 127.0.0.1:0).
	TrafficListener net.Listener
	AdminListener   net.Listener
	// MetricsListener, if set, serves GET /metrics alone instead of a
	// listener on cfg.Admin.MetricsAddr (which, when empty, means none).
	MetricsListener net.Listener
	// Version is this build, shown in the fleet view. Zero means "".
	Version string
}

// Server is a whole cutover process: the traffic listener (an Echo server
// with the ALB health check and the Router), the admin listener, and config
// hot reload. Build it with New, then Run it.
type Server struct {
	Router *Router
	// Breakers are the circuit breakers and fallback around both backends.
	Breakers *Breakers
	Admin    *Admin

	cfg       *config.Config // at start: listener and transport settings
	log       *slog.Logger
	traffic   *echo.Echo
	tsrv      *http.Server
	asrv      *http.Server
	msrv      *http.Server // GET /metrics alone (admin.metrics_addr); nil when off
	tln, aln  net.Listener
	mln       net.Listener
	watcher   *config.Watcher
	draining  atomic.Bool
	transport *http.Transport // to legacy
	shadow    *shadowing
	fleet     *fleet.Store // nil without fleet.redis_url
	rollouts  *rollouts    // rollout.go
}

// New builds a Server for cfg (validated by config.Load): the request
// pipeline (pipeline.go), the admin API and the listeners' servers, once.
func New(cfg *config.Config, opts Options) (*Server, error) {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	if o := cfg.Override; o.Enabled && o.Token == "" {
		log.Warn("override enabled without a token (override.allow_without_token): any client can force a backend, past shares, auto rollback and breakers",
			"header", o.Header)
	}
	p, err := newPipeline(cfg, opts, log)
	if err != nil {
		return nil, err
	}
	rt := p.router
	s := &Server{Router: rt, Breakers: p.breakers, Admin: NewAdmin(rt), cfg: cfg, log: log,
		tln: opts.TrafficListener, aln: opts.AdminListener, mln: opts.MetricsListener, transport: p.transport, shadow: p.shadow}
	s.Admin.RouteStatus = func(route string) any { return p.breakers.Status(route) }
	p.shadow.mount(s.Admin)
	if cfg.Admin.Pprof {
		mountPprof(s.Admin.Echo())
	}
	if cfg.Fleet.Enabled() {
		if err := s.newFleet(cfg, opts.Version); err != nil {
			p.shadow.closeResources()
			return nil, err
		}
	}
	s.newRollouts(cfg)

	s.traffic = echo.New()
	s.traffic.HideBanner, s.traffic.HidePort = true, true
	healthPath := cfg.Listen.HealthPath
	front := func(c echo.Context) error {
		r := c.Request()
		w := c.Response().Writer // the raw writer: the proxy streams and flushes itself
		if rejectAmbiguousFraming(w, r) {
			return nil
		}
		r = limitBodyRead(w, r, rt.Config().Listen.BodyReadTimeout)
		if r.URL.Path == healthPath {
			s.health(w, r)
			return nil
		}
		rt.ServeHTTP(w, r)
		return nil
	}
	// Every request takes this path before Echo's router: Flask's routing
	// (in the Router) decides, so no path or method can collide with Echo's.
	s.traffic.Pre(func(echo.HandlerFunc) echo.HandlerFunc { return front })

	s.tsrv = &http.Server{
		Handler:     s.traffic,
		ConnContext: framingConnContext,
		// Flask answers OPTIONS * (404); net/http would answer it itself.
		DisableGeneralOptionsHandler: true,
		ReadHeaderTimeout:            cfg.Listen.ReadHeaderTimeout,
		ReadTimeout:                  cfg.Listen.ReadTimeout,
		IdleTimeout:                  cfg.Listen.IdleTimeout,
		MaxHeaderBytes:               cfg.Listen.MaxHeaderBytes,
		ErrorLog:                     slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	s.asrv = &http.Server{
		Handler:           s.Admin,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       cfg.Listen.IdleTimeout,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	if cfg.Admin.MetricsAddr != "" || s.mln != nil {
		mux := http.NewServeMux()
		mux.Handle("GET "+metricsPath, rt.Metrics().Handler())
		s.msrv = &http.Server{
			Handler:           mux,
			ReadHeaderTimeout: 10 * time.Second,
			IdleTimeout:       cfg.Listen.IdleTimeout,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
		}
	}
	if cfg.File() != "" {
		s.watcher = &config.Watcher{Path: cfg.File(), Apply: s.apply, Result: s.reloaded}
	}
	s.mountConsole()
	return s, nil
}

// health answers the ALB health check: 200 while serving, 503 once
// draining, and with a fleet store 503 until the fleet's state is applied
// (or fleet.startup_sync_bound has passed: see package fleet).
func (s *Server) health(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	if s.draining.Load() {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte("draining\n"))
		return
	}
	if s.fleet != nil && !s.fleet.Ready() {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte("fleet state not applied yet\n"))
		return
	}
	_, _ = w.Write([]byte("ok\n"))
}

// apply swaps a reloaded config in; settings read only at start are
// reported as needing a restart.
func (s *Server) apply(c *config.Config) error {
	if err := s.Router.ApplyFile(c); err != nil {
		return err
	}
	if c.Legacy != s.cfg.Legacy || c.Listen.Addr != s.cfg.Listen.Addr || c.Admin.Addr != s.cfg.Admin.Addr || c.Admin.MetricsAddr != s.cfg.Admin.MetricsAddr ||
		c.Listen.HealthPath != s.cfg.Listen.HealthPath || c.Native != s.cfg.Native || c.Runtime != s.cfg.Runtime {
		s.log.Warn("config reloaded; listen, admin and metrics addresses, health_path, legacy, native and runtime settings take effect on restart")
	}
	if keys := shadowRestartKeys(s.cfg.Shadow, c.Shadow); len(keys) > 0 {
		s.log.Warn("config reloaded; these shadow settings take effect on restart", "keys", keys)
	}
	return nil
}

func (s *Server) reloaded(err error) {
	s.Router.Metrics().Reload(err)
	if err != nil {
		s.log.Error("config reload rejected; the last good config stays in force", "error", err)
		return
	}
	s.log.Info("config reloaded", "file", s.cfg.File())
}

// Reload re-reads the config file now (SIGHUP), even if unchanged.
func (s *Server) Reload() error {
	if s.watcher == nil {
		return errors.New("reload: config has no file")
	}
	return s.watcher.Reload(true)
}

// Listen binds the traffic and admin listeners (unless given in Options).
func (s *Server) Listen() error {
	if s.tln == nil {
		ln, err := net.Listen("tcp", s.cfg.Listen.Addr)
		if err != nil {
			return fmt.Errorf("listen traffic: %w", err)
		}
		s.tln = ln
	}
	if s.aln == nil {
		ln, err := net.Listen("tcp", s.cfg.Admin.Addr)
		if err != nil {
			return fmt.Errorf("listen admin: %w", err)
		}
		s.aln = ln
	}
	if s.msrv != nil && s.mln == nil {
		ln, err := net.Listen("tcp", s.cfg.Admin.MetricsAddr)
		if err != nil {
			return fmt.Errorf("listen metrics: %w", err)
		}
		s.mln = ln
	}
	return nil
}

// MetricsAddr is the address of the listener of its own serving /metrics
// (after Listen), or "" when there is none.
func (s *Server) MetricsAddr() string {
	if s.mln == nil {
		return ""
	}
	return s.mln.Addr().String()
}

// TrafficAddr is the traffic listener's address (after Listen).
func (s *Server) TrafficAddr() string { return s.tln.Addr().String() }

// AdminAddr is the admin listener's address (after Listen).
func (s *Server) AdminAddr() string { return s.aln.Addr().String() }

// Run serves until ctx is done, then drains: the health check fails at
// once, traffic is still served for shutdown.drain_delay (the ALB's
// deregistration delay), then in-flight requests, streams included, get
// shutdown.timeout to finish before connections are closed. It returns when
// every goroutine it started has stopped.
func (s *Server) Run(ctx context.Context) error {
	if err := s.Listen(); err != nil {
		return err
	}
	if err := s.shadow.start(s.Router.Metrics().Registry); err != nil {
		return err
	}
	if s.watcher != nil {
		if data, err := readFile(s.cfg.File()); err == nil {
			s.watcher.Prime(data)
		}
	}
	s.log.Info("cutover serving", "traffic", s.TrafficAddr(), "admin", s.AdminAddr(), "legacy", s.cfg.Legacy.URL)
	g, gctx := errgroup.WithContext(context.Background())
	stopWatch, cancelWatch := context.WithCancel(context.Background())
	defer cancelWatch()
	g.Go(func() error {
		return serve(s.tsrv, framingListener{s.tln, !s.tsrv.DisableGeneralOptionsHandler, s.tsrv.MaxHeaderBytes})
	})
	g.Go(func() error { return serve(s.asrv, s.aln) })
	if s.msrv != nil {
		g.Go(func() error { return serve(s.msrv, s.mln) })
	}
	if s.watcher != nil {
		g.Go(func() error { return s.watcher.Run(stopWatch) })
	}
	// The fleet link outlives the drain (heartbeats, a rollback during it)
	// and stops with Run.
	stopFleet, cancelFleet := context.WithCancel(context.Background())
	if s.fleet != nil {
		fleetDone := make(chan struct{})
		go func() {
			defer close(fleetDone)
			_ = s.fleet.Run(stopFleet)
		}()
		defer func() {
			cancelFleet()
			<-fleetDone
			_ = s.fleet.Close()
		}()
	}
	defer cancelFleet()
	// The rollouts stop with Run too, before the fleet link (deferred
	// after it, so run first): the driver releases its lease.
	stopRollouts, cancelRollouts := context.WithCancel(context.Background())
	rolloutsDone := make(chan struct{})
	go func() { defer close(rolloutsDone); s.rollouts.run(stopRollouts) }()
	defer func() { cancelRollouts(); <-rolloutsDone }()
	g.Go(func() error {
		delay := s.cfg.Shutdown.DrainDelay
		select {
		case <-ctx.Done():
		case <-gctx.Done(): // a listener failed: stop the rest at once
			delay = 0
		}
		cancelWatch()
		return s.drain(delay)
	})
	return g.Wait()
}

func serve(srv *http.Server, ln net.Listener) error {
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// drain runs the shutdown sequence.
func (s *Server) drain(delay time.Duration) error {
	s.draining.Store(true)
	s.log.Info("draining: health check failing", "drain_delay", delay.String())
	time.Sleep(delay)
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.Shutdown.Timeout)
	defer cancel()
	s.log.Info("draining: finishing in-flight requests", "timeout", s.cfg.Shutdown.Timeout.String())
	err := s.tsrv.Shutdown(ctx)
	if err != nil {
		s.log.Warn("drain timeout: closing remaining connections", "error", err)
		_ = s.tsrv.Close()
	}
	s.shadow.close(ctx) // no request is left to submit a shadow
	actx, acancel := context.WithTimeout(context.Background(), time.Second)
	defer acancel()
	if aerr := s.asrv.Shutdown(actx); aerr != nil {
		_ = s.asrv.Close()
	}
	if s.msrv != nil {
		if merr := s.msrv.Shutdown(actx); merr != nil {
			_ = s.msrv.Close()
		}
	}
	s.transport.CloseIdleConnections()
	s.log.Info("drained")
	return nil
}

func readFile(path string) ([]byte, error) { return os.ReadFile(path) }
