// Command bedrock-stub serves a local stand-in for AWS Bedrock Runtime (see internal/bedrockstub) until
// it receives SIGINT or SIGTERM.
//
//	bedrock-stub -addr 127.0.0.1:8900 -ttft 300ms -tps 60 -fault ''
//
// Once listening it prints exactly "bedrock-stub listening on ADDR" (the resolved address, so -addr
// 127.0.0.1:0 reveals its port) to stdout.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/cutover/cutover/internal/bedrockstub"
)

// shutdownTimeout bounds the wait for in-flight streams on shutdown.
const shutdownTimeout = 10 * time.Second

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "bedrock-stub:", err)
		}
		os.Exit(2)
	}
}

// run parses args, serves until ctx ends, then shuts down gracefully.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bedrock-stub", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:8900", "listen address")
	var opts bedrockstub.Options
	fs.DurationVar(&opts.TTFT, "ttft", 300*time.Millisecond, "modelled time to first token")
	fs.Float64Var(&opts.TokensPerSecond, "tps", 60, "modelled output tokens per second (0: no delay between tokens)")
	fs.StringVar(&opts.Fault, "fault", "", "fault injected into every request: "+strings.Join(bedrockstub.Faults, ", "))
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	if err := opts.Validate(); err != nil {
		return err
	}

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	return serve(ctx, ln, bedrockstub.New(opts), stdout)
}

// serve announces ln on stdout, serves stub on it until ctx ends, then shuts down gracefully.
func serve(ctx context.Context, ln net.Listener, stub *bedrockstub.Server, stdout io.Writer) error {
	srv := &http.Server{Handler: stub, ReadHeaderTimeout: 10 * time.Second}
	// ln already accepts connections (the kernel queues them), so announce
	// before serving: anyone answered has been told the address first.
	fmt.Fprintf(stdout, "bedrock-stub listening on %s\n", ln.Addr())
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()

	select {
	case err := <-serveErr:
		return err
	case <-ctx.Done():
	}
	// Release hung requests and pending latency first: Shutdown waits for every handler.
	stub.Close()
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-serveErr; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
