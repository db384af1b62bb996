package tracing

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// otlpHTTP posts spans to an OTLP/HTTP receiver as binary protobuf, one
// attempt per batch (a failed batch is reported to the SDK, which logs it
// through the error handler and drops it). It is the transport under
// otlptrace's exporter, which turns SDK spans into OTLP. cutover does not use
// otlptracehttp: that package's import of the OTLP collector service links
// gRPC and its gateway into the binary (+14 MB stripped), for a plain POST.
//
// Headers: OTEL_EXPORTER_OTLP_HEADERS and OTEL_EXPORTER_OTLP_TRACES_HEADERS
// ("key=value,key2=value2", values URL-encoded), as the specification says.
type otlpHTTP struct {
	url     string
	headers http.Header
	client  *http.Client
}

var _ otlptrace.Client = (*otlpHTTP)(nil)

// exportTimeout bounds one export request.
const exportTimeout = 10 * time.Second

func newOTLPHTTP(endpoint string) (*otlpHTTP, error) {
	c := &otlpHTTP{url: endpoint, headers: http.Header{}, client: &http.Client{
		Transport: &http.Transport{Proxy: http.ProxyFromEnvironment, MaxIdleConnsPerHost: 2, IdleConnTimeout: 90 * time.Second},
		Timeout:   exportTimeout,
	}}
	for _, name := range []string{"OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_TRACES_HEADERS"} {
		for _, kv := range strings.Split(os.Getenv(name), ",") {
			if strings.TrimSpace(kv) == "" {
				continue
			}
			k, v, ok := strings.Cut(kv, "=")
			dv, err := url.PathUnescape(strings.TrimSpace(v))
			if !ok || strings.TrimSpace(k) == "" || err != nil {
				return nil, fmt.Errorf("tracing: %s: %q is not key=value", name, kv)
			}
			c.headers.Set(strings.TrimSpace(k), dv)
		}
	}
	return c, nil
}

// Start implements otlptrace.Client.
func (c *otlpHTTP) Start(context.Context) error { return nil }

// Stop implements otlptrace.Client.
func (c *otlpHTTP) Stop(context.Context) error {
	c.client.CloseIdleConnections()
	return nil
}

// UploadTraces implements otlptrace.Client: it posts an
// ExportTraceServiceRequest, whose only field (1) is the repeated
// ResourceSpans, encoded here field by field.
func (c *otlpHTTP) UploadTraces(ctx context.Context, spans []*tracepb.ResourceSpans) error {
	var body []byte
	for _, rs := range spans {
		b, err := proto.Marshal(rs)
		if err != nil {
			return fmt.Errorf("otlp: encode spans: %w", err)
		}
		body = protowire.AppendTag(body, 1, protowire.BytesType)
		body = protowire.AppendBytes(body, b)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("otlp: %w", err)
	}
	for k, v := range c.headers {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/x-protobuf")
	resp, err := c.client.Do(req)
	if err != nil {
		return fmt.Errorf("otlp: export: %w", err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("otlp: export: %s from %s: %q", resp.Status, c.url, msg)
	}
	return nil
}
