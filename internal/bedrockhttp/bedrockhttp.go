// Package bedrockhttp holds the fixes that every aws-sdk-go-v2 Bedrock Runtime client of the project
// must use: Client (or HideWriteTo) for its HTTP client, and OwnEventStreamCodec on each streaming call.
//
// The HTTP client fix:
// smithy-go wraps a request body in a "safe" ReadCloser that exposes WriteTo and answers io.EOF from it
// once closed, and its client handler closes that body as soon as Do returns. When a server answers
// before net/http's write loop has finished with the body (it still probes the body for bytes beyond
// Content-Length, through io.Copy, hence WriteTo), the write loop gets io.EOF from WriteTo, takes it
// for a write error and closes the connection, and an event stream still being read from it fails with
// "use of closed network connection". Against a zero-latency stub in another process this fails 5 to 10%
// of sequential streaming calls (see TestHideWriteToUnderStreamingLoad).
// Hiding WriteTo makes io.Copy use Read, which ends cleanly with io.EOF. The code involved is smithy-go
// v1.28 transport/http/client.go (closes the built request's body after Do) and
// transport/http/internal/io/safe.go (safeWriteToReadCloser.WriteTo returns io.EOF once closed).
package bedrockhttp

import (
	"io"
	"net/http"

	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/schemas"
	"github.com/aws/smithy-go/transport/http/protocol/restjson1"
)

// HideWriteTo returns a RoundTripper that sends every request through rt with its body stripped of any
// WriteTo method (see the package comment). A nil rt means http.DefaultTransport. The result forwards
// CloseIdleConnections to rt and is safe for concurrent use if rt is.
func HideWriteTo(rt http.RoundTripper) http.RoundTripper {
	if rt == nil {
		rt = http.DefaultTransport
	}
	return &hideWriteTo{next: rt}
}

// Client returns a shallow copy of base whose transport is wrapped by HideWriteTo. A nil base means a
// zero http.Client (no timeout; the SDK call's context bounds each request).
func Client(base *http.Client) *http.Client {
	var c http.Client
	if base != nil {
		c = *base
	}
	c.Transport = HideWriteTo(c.Transport)
	return &c
}

type hideWriteTo struct {
	next http.RoundTripper
}

var _ http.RoundTripper = (*hideWriteTo)(nil)

// readCloserOnly has the methods of io.ReadCloser and nothing else.
type readCloserOnly struct{ io.ReadCloser }

func (t *hideWriteTo) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body == nil || req.Body == http.NoBody {
		return t.next.RoundTrip(req)
	}
	if _, ok := req.Body.(io.WriterTo); !ok {
		return t.next.RoundTrip(req)
	}
	// A RoundTripper must not modify the caller's request: send a shallow copy.
	r2 := new(http.Request)
	*r2 = *req
	r2.Body = readCloserOnly{req.Body}
	return t.next.RoundTrip(r2)
}

// CloseIdleConnections lets http.Client.CloseIdleConnections reach the wrapped transport.
func (t *hideWriteTo) CloseIdleConnections() {
	if c, ok := t.next.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// OwnEventStreamCodec is a per-call option for the streaming operations (InvokeModelWithResponseStream,
// ConverseStream): it gives the call its own protocol instance. A client's protocol holds one event-stream
// codec whose scratch state (decoder, payload buffer) every open stream writes without synchronization
// (aws/smithy-go#714, smithy-go v1.28 internal/eventstream/codec.go). The race is benign in effect today,
// but it fails `go test -race` as soon as two streams share a client; a fresh protocol per call costs
// two small allocations.
//
//	out, err := client.ConverseStream(ctx, in, bedrockhttp.OwnEventStreamCodec)
func OwnEventStreamCodec(o *bedrockruntime.Options) {
	o.Protocol = restjson1.New(schemas.AmazonBedrockFrontendService)
}
