package tracing

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"math/rand/v2"
	"strings"

	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// XRayHeader is the AWS trace header the ALB adds to every request.
const XRayHeader = "X-Amzn-Trace-Id"

// XRay propagates trace context in X-Amzn-Trace-Id
// ("Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"),
// whose Root is a W3C trace id written as 1-<8 hex>-<24 hex>.
//
// Extract makes a remote parent of Root, Parent and Sampled (0 or 1). The
// header the ALB adds has a Root only: then no parent is made, but the next
// root span takes Root as its trace id (see idGenerator), so cutover's trace
// and the ALB's access log share an id. Inject writes the current span as
// Root, Parent and Sampled.
type XRay struct{}

var _ propagation.TextMapPropagator = XRay{}

type rootKey struct{}

// Extract implements propagation.TextMapPropagator.
func (XRay) Extract(ctx context.Context, carrier propagation.TextMapCarrier) context.Context {
	h := carrier.Get(XRayHeader)
	if h == "" {
		return ctx
	}
	var (
		tid     trace.TraceID
		sid     trace.SpanID
		sampled = -1
		rootOK  bool
	)
	for _, part := range strings.Split(h, ";") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "Root":
			tid, rootOK = parseRoot(v)
		case "Parent":
			if b, err := hex.DecodeString(v); err == nil && len(b) == 8 {
				copy(sid[:], b)
			}
		case "Sampled":
			switch v {
			case "0":
				sampled = 0
			case "1":
				sampled = 1
			}
		}
	}
	if !rootOK {
		return ctx
	}
	if !sid.IsValid() || sampled < 0 {
		return context.WithValue(ctx, rootKey{}, tid)
	}
	var flags trace.TraceFlags
	if sampled == 1 {
		flags = trace.FlagsSampled
	}
	return trace.ContextWithRemoteSpanContext(ctx, trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: tid, SpanID: sid, TraceFlags: flags, Remote: true,
	}))
}

// parseRoot reads "1-<8 hex>-<24 hex>".
func parseRoot(v string) (trace.TraceID, bool) {
	var tid trace.TraceID
	if len(v) != 35 || v[0] != '1' || v[1] != '-' || v[10] != '-' {
		return tid, false
	}
	b, err := hex.DecodeString(v[2:10] + v[11:])
	if err != nil {
		return tid, false
	}
	copy(tid[:], b)
	return tid, tid.IsValid()
}

// Inject implements propagation.TextMapPropagator.
func (XRay) Inject(ctx context.Context, carrier propagation.TextMapCarrier) {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		return
	}
	tid := sc.TraceID().String()
	sampled := "0"
	if sc.IsSampled() {
		sampled = "1"
	}
	carrier.Set(XRayHeader, "Root=1-"+tid[:8]+"-"+tid[8:]+";Parent="+sc.SpanID().String()+";Sampled="+sampled)
}

// Fields implements propagation.TextMapPropagator.
func (XRay) Fields() []string { return []string{XRayHeader} }

// idGenerator makes random ids, except that a root span started under an
// X-Amzn-Trace-Id Root without a parent takes that Root as its trace id.
type idGenerator struct{}

var _ sdktrace.IDGenerator = idGenerator{}

func (idGenerator) NewIDs(ctx context.Context) (trace.TraceID, trace.SpanID) {
	tid, ok := ctx.Value(rootKey{}).(trace.TraceID)
	if !ok {
		binary.BigEndian.PutUint64(tid[:8], rand.Uint64())
		binary.BigEndian.PutUint64(tid[8:], rand.Uint64())
	}
	return tid, newSpanID()
}

func (idGenerator) NewSpanID(context.Context, trace.TraceID) trace.SpanID { return newSpanID() }

func newSpanID() trace.SpanID {
	var sid trace.SpanID
	for !sid.IsValid() {
		binary.BigEndian.PutUint64(sid[:], rand.Uint64())
	}
	return sid
}
