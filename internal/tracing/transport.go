package tracing

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// LegacyTransport wraps the transport to legacy: each round trip is a client
// span ("legacy METHOD") and carries it as traceparent. On a nil Tracer it
// returns next unchanged.
func (t *Tracer) LegacyTransport(next http.RoundTripper) http.RoundTripper {
	if t == nil {
		return next
	}
	return &transport{t: t, next: next, prop: t.toLegacy, name: legacySpan}
}

// BedrockTransport wraps the Bedrock client's transport: each HTTP attempt
// is a client span ("bedrock OPERATION", with the model id, the attempt and,
// when the response says, the token counts) and carries it as traceparent and
// X-Amzn-Trace-Id. Headers added after signing are not signed, so the
// signature stands. On a nil Tracer it returns next unchanged.
func (t *Tracer) BedrockTransport(next http.RoundTripper) http.RoundTripper {
	if t == nil {
		return next
	}
	return &transport{t: t, next: next, prop: t.toAWS, name: bedrockSpan}
}

type transport struct {
	t      *Tracer
	next   http.RoundTripper
	prop   propagation.TextMapPropagator
	name   func(*http.Request) (string, []attribute.KeyValue)
	linked bool // a new trace linked to the request's span, not a child of it
}

var _ http.RoundTripper = (*transport)(nil)

func legacySpan(r *http.Request) (string, []attribute.KeyValue) {
	return "legacy " + r.Method, []attribute.KeyValue{
		attribute.String("http.request.method", r.Method),
		attribute.String("server.address", r.URL.Host),
		attribute.String("url.path", r.URL.Path),
	}
}

// bedrockSpan names a Bedrock Runtime call by its path,
// /model/{modelId}/{invoke|invoke-with-response-stream|converse|converse-stream},
// and its attempt by the SDK's Amz-Sdk-Request header ("attempt=2; max=3").
func bedrockSpan(r *http.Request) (string, []attribute.KeyValue) {
	attrs := []attribute.KeyValue{attribute.String("gen_ai.system", "aws.bedrock"), attribute.String("server.address", r.URL.Host)}
	op := "call"
	if parts := strings.Split(strings.TrimPrefix(r.URL.EscapedPath(), "/"), "/"); len(parts) == 3 && parts[0] == "model" {
		if model, err := url.PathUnescape(parts[1]); err == nil {
			attrs = append(attrs, attribute.String("gen_ai.request.model", model))
		}
		op = parts[2]
	}
	for _, kv := range strings.Split(r.Header.Get("Amz-Sdk-Request"), ";") {
		if k, v, _ := strings.Cut(strings.TrimSpace(kv), "="); k == "attempt" {
			if n, err := strconv.Atoi(v); err == nil {
				attrs = append(attrs, attribute.Int("cutover.bedrock.attempt", n))
			}
		}
	}
	return "bedrock " + op, attrs
}

// RoundTrip implements http.RoundTripper. The span ends when the response
// body is read to its end or closed (a stream's span lasts the stream).
func (tr *transport) RoundTrip(r *http.Request) (*http.Response, error) {
	name, attrs := tr.name(r)
	var (
		ctx  context.Context
		span trace.Span
	)
	if tr.linked {
		ctx, span = tr.t.StartLinked(r.Context(), trace.SpanContext{}, name, attrs...)
	} else {
		ctx, span = tr.t.tracer.Start(r.Context(), name, trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attrs...))
	}
	out := r.Clone(ctx) // a RoundTripper must not change the request it is given
	tr.prop.Inject(ctx, propagation.HeaderCarrier(out.Header))
	resp, err := tr.next.RoundTrip(out)
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
		span.End()
		return resp, err
	}
	span.SetAttributes(attribute.Int("http.response.status_code", resp.StatusCode))
	for _, h := range []struct{ header, attr string }{
		{"X-Amzn-Bedrock-Input-Token-Count", "gen_ai.usage.input_tokens"},
		{"X-Amzn-Bedrock-Output-Token-Count", "gen_ai.usage.output_tokens"},
	} {
		if n, err := strconv.Atoi(resp.Header.Get(h.header)); err == nil {
			span.SetAttributes(attribute.Int(h.attr, n))
		}
	}
	if resp.StatusCode >= 500 {
		span.SetStatus(codes.Error, strconv.Itoa(resp.StatusCode))
	}
	if resp.StatusCode == http.StatusSwitchingProtocols { // the body is the connection: leave it as it is
		span.End()
		return resp, nil
	}
	resp.Body = &spanBody{ReadCloser: resp.Body, span: span}
	return resp, nil
}

// spanBody ends its span at the body's end or close, whichever comes first.
type spanBody struct {
	io.ReadCloser
	span trace.Span
	once sync.Once
}

func (b *spanBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil {
		b.end(err)
	}
	return n, err
}

func (b *spanBody) Close() error {
	err := b.ReadCloser.Close()
	b.end(nil)
	return err
}

func (b *spanBody) end(err error) {
	b.once.Do(func() {
		if err != nil && err != io.EOF {
			b.span.RecordError(err)
		}
		b.span.End()
	})
}

// LinkedTransport wraps a transport whose calls outlive the request they
// come from (a shadow's): each call is a span named name in a trace of its
// own, linked to the span of the request's context, and carries it as
// traceparent. On a nil Tracer it returns next unchanged.
func (t *Tracer) LinkedTransport(next http.RoundTripper, name string) http.RoundTripper {
	if t == nil {
		return next
	}
	return &transport{t: t, next: next, prop: t.toLegacy, linked: true,
		name: func(*http.Request) (string, []attribute.KeyValue) { return name, nil }}
}

// Handler wraps next in an internal span named name, a child of the
// request's span. On a nil Tracer it returns next unchanged.
func (t *Tracer) Handler(name string, next http.Handler) http.Handler {
	if t == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, span := t.tracer.Start(r.Context(), name)
		defer span.End()
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}
