package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/cutover/cutover/config"
	"github.com/cutover/cutover/handlers"
	"github.com/cutover/cutover/internal/tracing"
	"github.com/cutover/cutover/proxy"
)

// buildNative builds the native handlers from cfg.Native: one Bedrock client
// and one Redis client for the process. The returned func closes them. With
// tr (nil: tracing off), each Bedrock attempt and Redis command is a span.
//
// The legacy app's test hooks (CUTOVER_TEST_CLOCK, CUTOVER_TEST_IDS) are
// never read here: a process serving users must not freeze its clock or
// derive conversation ids from request bodies because of a stray variable.
// Tests that need them build handlers.App with handlers.FixedClock and
// handlers.HashedID.
func buildNative(ctx context.Context, cfg *config.Config, log *slog.Logger, tr *tracing.Tracer) (proxy.NativeApp, func(), error) {
	n := cfg.Native
	bo := handlers.BedrockOptions{
		Region: n.AWSRegion, EndpointURL: n.BedrockEndpointURL, Timeout: n.BedrockTimeout, MaxAttempts: n.BedrockMaxAttempts,
		MaxIdleConns: n.BedrockMaxIdleConns,
	}
	if tr != nil {
		bo.WrapTransport = tr.BedrockTransport
	}
	br, err := handlers.NewBedrockClient(ctx, bo)
	if err != nil {
		return nil, nil, fmt.Errorf("native handlers: %w", err)
	}
	rc, err := handlers.NewRedis(handlers.RedisOptions{URL: n.RedisURL, PoolSize: n.RedisPoolSize, PoolTimeout: n.RedisPoolTimeout})
	if err != nil {
		return nil, nil, fmt.Errorf("native handlers: %w", err)
	}
	if h := tr.RedisHook(); h != nil {
		rc.AddHook(h)
	}
	app, err := handlers.New(handlerConfig(n), handlers.Deps{Bedrock: br, Store: rc, Logger: log})
	if err != nil {
		rc.Close()
		return nil, nil, err
	}
	return app, func() { _ = rc.Close() }, nil
}

// errNoSecretKey refuses to serve with no native.secret_key, or with the
// legacy app's public development key: anyone could forge session cookies
// and so read or continue anyone's conversation.
var errNoSecretKey = errors.New("native.secret_key is required: set it (or CUTOVER_NATIVE_SECRET_KEY) to the legacy app's SECRET_KEY; " +
	"the built-in development key is public and lets anyone forge sessions")

// requireSecretKey is errNoSecretKey when cfg has no usable session secret.
func requireSecretKey(cfg *config.Config) error {
	if k := cfg.Native.SecretKey; k == "" || k == handlers.DevSecretKey {
		return errNoSecretKey
	}
	return nil
}

func handlerConfig(n config.Native) handlers.Config {
	return handlers.Config{
		ModelID: n.ModelID, SystemPrompt: n.SystemPrompt, MaxMessageChars: n.MaxMessageChars, HistoryTurns: n.HistoryTurns,
		MaxContentLength: n.MaxContentLength, SecretKey: n.SecretKey, BedrockTimeout: n.BedrockTimeout,
		Headers: headerProfile(n.Headers),
	}
}

// headerProfile is native.headers as the handlers' header profile; nil (an
// unset Server, in a Config not from Load) leaves the handlers' default.
func headerProfile(h config.NativeHeaders) http.Header {
	switch h.Server {
	case "":
		return nil
	case config.NoServerHeader:
		return http.Header{}
	}
	return http.Header{"Server": {h.Server}}
}

// nativeEndpoints names the endpoints the native handlers implement, for
// check-config; building them here touches no network.
func nativeEndpoints(cfg *config.Config) ([]string, error) {
	br, err := handlers.NewBedrockClient(context.Background(), handlers.BedrockOptions{
		Region: cfg.Native.AWSRegion, Credentials: credentials.NewStaticCredentialsProvider("check", "check", ""),
	})
	if err != nil {
		return nil, err
	}
	rc, err := handlers.NewRedisClient(cfg.Native.RedisURL)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	app, err := handlers.New(handlerConfig(cfg.Native), handlers.Deps{Bedrock: br, Store: rc})
	if err != nil {
		return nil, err
	}
	return app.Endpoints(), nil
}
