// Package bedrockstub is a stand-in for AWS Bedrock Runtime that speaks its wire protocol, so the real
// SDKs (aws-sdk-go-v2 with BaseEndpoint, boto3 with endpoint_url) talk to it unchanged.
//
// It serves InvokeModel, InvokeModelWithResponseStream, Converse and ConverseStream for Anthropic
// messages bodies. Replies are a pure function of the model id and the canonical form of the request
// body (see Canonicalize), and always mix ASCII with non-ASCII text, an astral emoji, double quotes,
// <, >, & and newlines, so any difference in encoding between two clients shows up in a diff.
//
// Latency is modelled (time to first token, then tokens per second) and faults are injected by option,
// by the X-Stub-Fault request header, or by a [[stub-fault:NAME]] marker anywhere in the request body.
package bedrockstub

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Fault names understood by Options.Fault, the X-Stub-Fault header and the body marker.
const (
	FaultNone         = "none"          // no fault; lets a request opt out of Options.Fault
	FaultThrottle     = "throttle"      // ThrottlingException, 429
	FaultUnavailable  = "unavailable"   // ServiceUnavailableException, 503
	FaultModelTimeout = "model-timeout" // ModelTimeoutException, 408
	FaultValidation   = "validation"    // ValidationException, 400
	FaultHang         = "hang"          // no answer until the client goes away or Close is called
	FaultStreamError  = "stream-error"  // streams: some chunks, then a modelStreamErrorException frame; others: ModelErrorException, 424
)

// Faults lists every fault name, in a stable order.
var Faults = []string{FaultNone, FaultThrottle, FaultUnavailable, FaultModelTimeout, FaultValidation, FaultHang, FaultStreamError}

// FaultHeader is the request header that selects a fault for one request.
const FaultHeader = "X-Stub-Fault"

// maxBodyBytes bounds a request body; Bedrock's own limit for InvokeModel is in the same range.
const maxBodyBytes = 20 << 20

// Options configure a Server. The zero value means no latency and no fault.
type Options struct {
	// TTFT is the modelled time to first token. Streams send their headers and first event after it;
	// InvokeModel and Converse answer after TTFT plus the generation time. Zero means no wait.
	TTFT time.Duration
	// TokensPerSecond paces generation: each output token (one word of the reply) takes 1/TokensPerSecond.
	// Zero means no delay between tokens.
	TokensPerSecond float64
	// Fault, if not empty, is injected into every request that does not select one itself
	// (by FaultHeader or body marker). One of Faults.
	Fault string
}

// Validate reports every problem with o at once.
func (o Options) Validate() error {
	var errs []error
	if o.TTFT < 0 {
		errs = append(errs, fmt.Errorf("ttft %v is negative", o.TTFT))
	}
	if o.TokensPerSecond < 0 {
		errs = append(errs, fmt.Errorf("tokens per second %v is negative", o.TokensPerSecond))
	}
	if o.Fault != "" && !knownFault(o.Fault) {
		errs = append(errs, fmt.Errorf("fault %q is not one of %s", o.Fault, strings.Join(Faults, ", ")))
	}
	return errors.Join(errs...)
}

func knownFault(name string) bool {
	for _, f := range Faults {
		if f == name {
			return true
		}
	}
	return false
}

// Server is the Bedrock Runtime stand-in. It is an http.Handler, safe for concurrent use.
type Server struct {
	opts Options
	mux  *http.ServeMux

	closed    chan struct{}
	closeOnce sync.Once
	inFlight  atomic.Int64
	frames    atomic.Int64 // event-stream frames written, for tests
}

var _ http.Handler = (*Server)(nil)

// New returns a Server configured by opts. Invalid options are not fatal: an unknown Options.Fault is
// answered per request with a ValidationException naming it (call Options.Validate to fail early).
func New(opts Options) *Server {
	s := &Server{opts: opts, mux: http.NewServeMux(), closed: make(chan struct{})}
	s.mux.HandleFunc("POST /model/{modelId}/invoke", s.invokeModel)
	s.mux.HandleFunc("POST /model/{modelId}/invoke-with-response-stream", s.invokeModelStream)
	s.mux.HandleFunc("POST /model/{modelId}/converse", s.converse)
	s.mux.HandleFunc("POST /model/{modelId}/converse-stream", s.converseStream)
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, excUnknownOperation, "Unknown operation "+r.Method+" "+r.URL.EscapedPath())
	})
	return s
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.inFlight.Add(1)
	defer s.inFlight.Add(-1)
	s.mux.ServeHTTP(w, r)
}

// InFlight reports how many requests the server is handling (a hung request counts until it ends).
func (s *Server) InFlight() int64 { return s.inFlight.Load() }

// Close releases every request held by the hang fault or waiting on modelled latency: they end without
// an answer (the connection is dropped), as an http.Server cannot shut down while handlers wait.
// Later requests that would wait are dropped the same way; those that would not are still served.
// Close is idempotent.
func (s *Server) Close() {
	s.closeOnce.Do(func() { close(s.closed) })
}

// errAborted reports that a wait ended because the client went away or the server closed.
var errAborted = errors.New("request aborted")

// wait sleeps for d unless the request's context ends or the server closes first.
func (s *Server) wait(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return errAborted
	case <-s.closed:
		return errAborted
	}
}

// hang blocks until the client goes away or the server closes, then drops the connection.
func (s *Server) hang(ctx context.Context) {
	select {
	case <-ctx.Done():
	case <-s.closed:
	}
	panic(http.ErrAbortHandler)
}

// tokenDelay is the modelled generation time of n tokens.
func (s *Server) tokenDelay(n int) time.Duration {
	if s.opts.TokensPerSecond <= 0 || n <= 0 {
		return 0
	}
	return time.Duration(float64(n) / s.opts.TokensPerSecond * float64(time.Second))
}

// latencyMillis is the modelled total latency reported in headers and metrics; it is modelled rather
// than measured so that equal requests get byte-equal replies.
func (s *Server) latencyMillis(outputTokens int) int64 {
	return (s.opts.TTFT + s.tokenDelay(outputTokens)).Milliseconds()
}

var faultMarker = regexp.MustCompile(`\[\[stub-fault:([A-Za-z0-9_-]*)\]\]`)

// request is what every operation needs from the HTTP request.
type request struct {
	modelID   string
	body      []byte
	fault     string
	requestID string
}

// readRequest reads the body and picks the fault: header first, then body marker, then Options.Fault.
// It writes the error answer itself and returns false when the request cannot go on.
func (s *Server) readRequest(w http.ResponseWriter, r *http.Request) (request, bool) {
	req := request{modelID: r.PathValue("modelId"), requestID: newRequestID()}
	w.Header()["x-amzn-RequestId"] = []string{req.requestID}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, excValidation, "Input is too long for requested model.")
			return req, false
		}
		// The client went away mid-body; nobody is left to answer.
		panic(http.ErrAbortHandler)
	}
	req.body = body
	req.fault = s.opts.Fault
	if m := faultMarker.FindSubmatch(body); m != nil {
		req.fault = string(m[1])
	}
	if h := r.Header.Get(FaultHeader); h != "" {
		req.fault = h
	}
	if req.fault == FaultNone {
		req.fault = ""
	}
	if req.fault != "" && !knownFault(req.fault) {
		writeError(w, excValidation, fmt.Sprintf("bedrock-stub: unknown fault %q (known: %s)", req.fault, strings.Join(Faults, ", ")))
		return req, false
	}
	return req, true
}

// answerFault answers the faults that replace the whole response, and reports whether it did.
// stream-error is left to streaming operations when stream is true.
func (s *Server) answerFault(ctx context.Context, w http.ResponseWriter, fault string, stream bool) bool {
	switch fault {
	case "":
		return false
	case FaultHang:
		s.hang(ctx)
	case FaultThrottle:
		writeError(w, excThrottling, "Too many requests, please wait before trying again.")
	case FaultUnavailable:
		writeError(w, excServiceUnavailable, "Bedrock is unable to process your request.")
	case FaultModelTimeout:
		writeError(w, excModelTimeout, "Model has timed out in processing the request. Try your request again.")
	case FaultValidation:
		writeError(w, excValidation, "Malformed input request, please reformat your input and try again. (bedrock-stub: validation fault)")
	case FaultStreamError:
		if stream {
			return false
		}
		writeErrorFields(w, excModelError, "Received server error (500) from model. See the model's logs for details.",
			map[string]any{"originalStatusCode": 500, "resourceName": "bedrock-stub"})
	}
	return true
}

func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on Linux.
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// marshalCompact encodes v as compact JSON without HTML escaping, like the service.
func marshalCompact(v any) []byte {
	var buf bytes.Buffer
	enc := jsonEncoder(&buf)
	if err := enc.Encode(v); err != nil {
		// Only values built by this package are encoded; failing here is a bug.
		panic(fmt.Sprintf("bedrockstub: encode response: %v", err))
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}
