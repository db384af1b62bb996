// Package tracing is cutover's OpenTelemetry tracing: one tracer provider
// exporting over OTLP/HTTP, the propagation of trace context on the hops
// cutover owns, and the spans of those hops.
//
// It is off unless config.Tracing.OTLPEndpoint is set, and off means nil: a
// nil *Tracer is what New returns, and callers test for nil once where they
// are built (a transport is not wrapped, a hook is not added) or once per
// request, so tracing off adds no span, no header and no allocation.
//
// Propagation: a request's parent is taken from W3C traceparent, else from
// the ALB's X-Amzn-Trace-Id (Root and Parent; Sampled). The legacy request
// carries cutover's span as W3C traceparent, while X-Amzn-Trace-Id reaches
// legacy exactly as the ALB sent it (so legacy's logs still match the ALB's
// access log). Bedrock calls carry both headers, from cutover's span.
package tracing

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/cutover/cutover/config"
)

// scope names cutover's instrumentation in exported spans.
const scope = "github.com/cutover/cutover"

// Tracer makes cutover's spans and carries trace context across its hops.
// A nil *Tracer is off. Its methods are safe for concurrent use.
type Tracer struct {
	provider *sdktrace.TracerProvider
	tracer   trace.Tracer
	incoming propagation.TextMapPropagator // X-Amzn-Trace-Id, then W3C (W3C wins when both)
	toLegacy propagation.TextMapPropagator // W3C only
	toAWS    propagation.TextMapPropagator // W3C and X-Amzn-Trace-Id
}

// New builds the tracer for cfg, or returns nil when tracing is off. The
// exporter batches spans and posts them in the background; Shutdown flushes
// what is left. Export failures are logged to log (nil means slog.Default())
// and never reach a request.
func New(ctx context.Context, cfg config.Tracing, log *slog.Logger) (*Tracer, error) {
	if !cfg.Enabled() {
		return nil, nil
	}
	if log == nil {
		log = slog.Default()
	}
	endpoint, err := tracesURL(cfg.OTLPEndpoint)
	if err != nil {
		return nil, err
	}
	client, err := newOTLPHTTP(endpoint)
	if err != nil {
		return nil, err
	}
	exp, err := otlptrace.New(ctx, client)
	if err != nil {
		return nil, fmt.Errorf("tracing: exporter: %w", err)
	}
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(attribute.String("service.name", "cutover")))
	if err != nil {
		return nil, fmt.Errorf("tracing: resource: %w", err)
	}
	// OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES override the default name.
	if env, err := resource.New(ctx, resource.WithFromEnv()); err == nil {
		if merged, err := resource.Merge(res, env); err == nil {
			res = merged
		}
	}
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) { log.Warn("tracing: export failed", "error", err) }))
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp),
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(cfg.Ratio()))),
		sdktrace.WithIDGenerator(idGenerator{}),
	)
	w3c := propagation.TraceContext{}
	return &Tracer{
		provider: tp,
		tracer:   tp.Tracer(scope),
		incoming: propagation.NewCompositeTextMapPropagator(XRay{}, w3c),
		toLegacy: w3c,
		toAWS:    propagation.NewCompositeTextMapPropagator(w3c, XRay{}),
	}, nil
}

// tracesURL is endpoint with /v1/traces when it has no path.
func tracesURL(endpoint string) (string, error) {
	u, err := url.Parse(endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("tracing: otlp_endpoint %q is not an http(s) URL", endpoint)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/v1/traces"
	}
	return u.String(), nil
}

// Shutdown exports the spans still buffered and stops the exporter, within
// ctx. A nil Tracer has nothing to do.
func (t *Tracer) Shutdown(ctx context.Context) error {
	if t == nil {
		return nil
	}
	if err := t.provider.Shutdown(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("tracing: shutdown: %w", err)
	}
	return nil
}

// StartRequest starts the server span of one request, a child of the trace
// context the request carries, and returns the request with the span in its
// context. End it with EndRequest.
func (t *Tracer) StartRequest(r *http.Request) (*http.Request, trace.Span) {
	ctx := t.incoming.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
	ctx, span := t.tracer.Start(ctx, r.Method, trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(attribute.String("http.request.method", r.Method), attribute.String("url.path", r.URL.Path)))
	return r.WithContext(ctx), span
}

// Outcome is what cutover decided and did for one request, as its server
// span records it.
type Outcome struct {
	// Route is the route name ("_unmatched" for none); Path its URL rule.
	Route, Path string
	// Reason is the routing decision's reason (share, override, ...).
	Reason string
	// Backend is the backend that served: legacy or native.
	Backend string
	// Fallback is the fallback reason, "" when the decided backend served.
	Fallback string
	// Status is the status the client got (499: it went away).
	Status int
}

// EndRequest records o on the server span and ends it: the span is named
// "METHOD path rule", and a 5xx marks it as an error.
func EndRequest(span trace.Span, method string, o Outcome) {
	if o.Path != "" {
		span.SetName(method + " " + o.Path)
		span.SetAttributes(attribute.String("http.route", o.Path))
	}
	span.SetAttributes(
		attribute.String("cutover.route", o.Route),
		attribute.String("cutover.reason", o.Reason),
		attribute.String("cutover.backend", o.Backend),
		attribute.Int("http.response.status_code", o.Status),
	)
	if o.Fallback != "" {
		span.SetAttributes(attribute.String("cutover.fallback", o.Fallback))
	}
	if o.Status >= 500 {
		span.SetStatus(codes.Error, strconv.Itoa(o.Status))
	}
	span.End()
}

// Start starts an internal span named name, a child of ctx's span.
func (t *Tracer) Start(ctx context.Context, name string, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	return t.tracer.Start(ctx, name, trace.WithAttributes(attrs...))
}

// StartLinked starts a span named name that begins a trace of its own,
// linked to link (or, when link is the zero SpanContext, to the span of
// ctx): work that outlives the request it came from, such as a shadow job.
func (t *Tracer) StartLinked(ctx context.Context, link trace.SpanContext, name string, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	if !link.IsValid() {
		link = trace.SpanContextFromContext(ctx)
	}
	ctx = context.WithValue(ctx, rootKey{}, nil) // a trace id of its own, not the request's X-Amzn-Trace-Id Root
	opts := []trace.SpanStartOption{trace.WithNewRoot(), trace.WithAttributes(attrs...)}
	if link.IsValid() {
		opts = append(opts, trace.WithLinks(trace.Link{SpanContext: link}))
	}
	return t.tracer.Start(ctx, name, opts...)
}
