package tracing

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// The body is an ExportTraceServiceRequest as the collector's own type
// decodes it; the headers of OTEL_EXPORTER_OTLP_*HEADERS are sent; a
// non-2xx answer is an error.
func TestOTLPHTTP(t *testing.T) {
	var got coltracepb.ExportTraceServiceRequest
	var header http.Header
	status := http.StatusOK
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		header = r.Header.Clone()
		body, _ := io.ReadAll(r.Body)
		if err := proto.Unmarshal(body, &got); err != nil {
			t.Errorf("decode: %v", err)
		}
		w.WriteHeader(status)
	}))
	defer srv.Close()
	t.Setenv("OTEL_EXPORTER_OTLP_HEADERS", "authorization=Bearer%20abc, x-tenant=one")
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "x-tenant=two")
	c, err := newOTLPHTTP(srv.URL + "/v1/traces")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop(context.Background())
	spans := []*tracepb.ResourceSpans{
		{ScopeSpans: []*tracepb.ScopeSpans{{Spans: []*tracepb.Span{{Name: "a"}, {Name: "b"}}}}},
		{ScopeSpans: []*tracepb.ScopeSpans{{Spans: []*tracepb.Span{{Name: "c"}}}}},
	}
	if err := c.UploadTraces(context.Background(), spans); err != nil {
		t.Fatal(err)
	}
	if n := len(got.GetResourceSpans()); n != 2 || got.GetResourceSpans()[1].GetScopeSpans()[0].GetSpans()[0].GetName() != "c" {
		t.Errorf("received %v", &got)
	}
	if header.Get("Content-Type") != "application/x-protobuf" || header.Get("Authorization") != "Bearer abc" || header.Get("X-Tenant") != "two" {
		t.Errorf("headers %v", header)
	}
	status = http.StatusServiceUnavailable
	if err := c.UploadTraces(context.Background(), spans); err == nil || !strings.Contains(err.Error(), "503") {
		t.Errorf("a 503 gave %v", err)
	}
	t.Setenv("OTEL_EXPORTER_OTLP_HEADERS", "no-equals-sign")
	if _, err := newOTLPHTTP(srv.URL); err == nil {
		t.Error("a malformed OTEL_EXPORTER_OTLP_HEADERS was accepted")
	}
}
