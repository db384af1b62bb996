package handlers

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
	"github.com/aws/smithy-go"

	"github.com/cutover/cutover/compat"
	"github.com/cutover/cutover/internal/bedrockhttp"
)

// ModelInvoker is the non-streaming Bedrock call /chat makes
// (*bedrockruntime.Client satisfies it).
type ModelInvoker interface {
	InvokeModel(ctx context.Context, params *bedrockruntime.InvokeModelInput, optFns ...func(*bedrockruntime.Options)) (*bedrockruntime.InvokeModelOutput, error)
}

// StreamInvoker is the streaming Bedrock call /chat/stream makes
// (*bedrockruntime.Client satisfies it).
type StreamInvoker interface {
	InvokeModelWithResponseStream(ctx context.Context, params *bedrockruntime.InvokeModelWithResponseStreamInput, optFns ...func(*bedrockruntime.Options)) (*bedrockruntime.InvokeModelWithResponseStreamOutput, error)
}

// Bedrock is both calls.
type Bedrock interface {
	ModelInvoker
	StreamInvoker
}

var _ Bedrock = (*bedrockruntime.Client)(nil)

// BedrockOptions configures NewBedrockClient like the legacy boto3 client.
type BedrockOptions struct {
	// Region is AWS_REGION. Empty means "us-east-1".
	Region string
	// EndpointURL is BEDROCK_ENDPOINT_URL. Empty means the real AWS endpoint.
	EndpointURL string
	// Timeout is BEDROCK_TIMEOUT, botocore's read_timeout: the longest wait
	// for the response headers and for each read of the response body
	// (between two events of a stream). Zero means 60s.
	Timeout time.Duration
	// ConnectTimeout bounds connection setup. Zero means 5s (the legacy value).
	ConnectTimeout time.Duration
	// MaxAttempts is BEDROCK_MAX_ATTEMPTS: attempts per call, first included,
	// in the SDK's standard retry mode (as botocore's "standard"). Zero means 3.
	MaxAttempts int
	// MaxIdleConns is how many idle connections to Bedrock are kept for
	// reuse. Every call in flight holds one connection (HTTP/1.1, as the
	// legacy botocore client), so this should cover the usual number of
	// concurrent calls, or a burst's connections beyond it are closed when
	// it ends and dialled again (a TLS handshake each on real AWS). Zero
	// means 1024.
	MaxIdleConns int
	// Credentials, when set, are used as they are (and bearer-token auth is
	// turned off, since it refuses plain-http endpoints). Nil means the
	// default AWS credential chain.
	Credentials aws.CredentialsProvider
	// WrapTransport, when set, wraps the client's HTTP transport once, at
	// build (tracing: a span per attempt, trace headers). Nil means none.
	WrapTransport func(http.RoundTripper) http.RoundTripper
}

func (o BedrockOptions) withDefaults() BedrockOptions {
	if o.Region == "" {
		o.Region = "us-east-1"
	}
	if o.Timeout == 0 {
		o.Timeout = 60 * time.Second
	}
	if o.ConnectTimeout == 0 {
		o.ConnectTimeout = 5 * time.Second
	}
	if o.MaxAttempts == 0 {
		o.MaxAttempts = 3
	}
	if o.MaxIdleConns == 0 {
		o.MaxIdleConns = 1024
	}
	return o
}

// NewBedrockClient builds the one Bedrock Runtime client a process uses: its
// own connection pool with the connect and response-header timeouts, the
// transport fix of internal/bedrockhttp, the standard retryer with
// MaxAttempts. Build it once at start.
func NewBedrockClient(ctx context.Context, o BedrockOptions) (*bedrockruntime.Client, error) {
	o = o.withDefaults()
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.DialContext = (&net.Dialer{Timeout: o.ConnectTimeout, KeepAlive: 30 * time.Second}).DialContext
	transport.ResponseHeaderTimeout = o.Timeout
	// One host: the per-host and the total idle limits are the same thing.
	transport.MaxIdleConns = o.MaxIdleConns
	transport.MaxIdleConnsPerHost = o.MaxIdleConns
	// Each connection keeps its buffers for its whole life, and a stream
	// holds one for minutes: net/http's 4 KiB each way are more than an
	// event (a few hundred bytes) or a signed request's header needs.
	transport.ReadBufferSize = 1 << 10
	transport.WriteBufferSize = 2 << 10
	// HTTP/1.1 as botocore speaks it: one connection per call in flight, so
	// a slow stream never shares a flow-control window or a connection's
	// stream limit with others (DefaultTransport would try HTTP/2 on TLS).
	transport.Protocols = new(http.Protocols)
	transport.Protocols.SetHTTP1(true)
	var rt http.RoundTripper = &readTimeout{next: transport, d: o.Timeout}
	if o.WrapTransport != nil {
		rt = o.WrapTransport(rt)
	}
	httpClient := bedrockhttp.Client(&http.Client{Transport: rt})

	optFns := []func(*bedrockruntime.Options){func(bo *bedrockruntime.Options) {
		bo.HTTPClient = httpClient
		bo.RetryMaxAttempts = o.MaxAttempts
		bo.RetryMode = aws.RetryModeStandard
		if o.EndpointURL != "" {
			bo.BaseEndpoint = aws.String(o.EndpointURL)
		}
		if o.Credentials != nil {
			bo.BearerAuthTokenProvider = nil
			bo.AuthSchemePreference = nil
		}
	}}
	if o.Credentials != nil {
		return bedrockruntime.New(bedrockruntime.Options{Region: o.Region, Credentials: o.Credentials}, optFns...), nil
	}
	cfg, err := awsconfig.LoadDefaultConfig(ctx, awsconfig.WithRegion(o.Region))
	if err != nil {
		return nil, fmt.Errorf("load aws config: %w", err)
	}
	return bedrockruntime.NewFromConfig(cfg, optFns...), nil
}

// readTimeout gives every response body botocore's read_timeout: a Read
// that waits longer than d fails (the body is closed under it). Time spent
// between reads, such as while the caller writes to its own client, does not
// count.
type readTimeout struct {
	next http.RoundTripper
	d    time.Duration
}

var _ http.RoundTripper = (*readTimeout)(nil)

func (t *readTimeout) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(req)
	if err != nil || resp.Body == nil || resp.Body == http.NoBody {
		return resp, err
	}
	b := &timedBody{rc: resp.Body, d: t.d, base: time.Now()}
	b.reading.Store(notReading)
	// Armed only once b.timer is set, so check never sees it nil.
	b.timer = time.AfterFunc(math.MaxInt64, b.check)
	b.timer.Reset(t.d)
	resp.Body = b
	return resp, nil
}

// CloseIdleConnections reaches the wrapped transport.
func (t *readTimeout) CloseIdleConnections() {
	if c, ok := t.next.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// errReadTimeout is a body read that waited longer than the read timeout.
var errReadTimeout = errors.New("bedrock response read timed out")

// notReading marks a timedBody with no Read in progress.
const notReading = -1

// timedBody fails a Read that waits longer than d by closing the body under
// it. An event stream is read in many small pieces (four or so per event),
// so a Read only notes when it started, and one timer per body looks at that
// every d, or when the Read in progress would reach d: re-arming a timer
// around each Read cost 3% of the CPU of /chat/stream, and a timer per Read
// a tenth of its allocations.
type timedBody struct {
	rc       io.ReadCloser
	d        time.Duration
	base     time.Time    // monotonic origin of reading
	reading  atomic.Int64 // when the Read in progress started, since base; notReading if none
	done     atomic.Bool  // closed, or read to its end: the timer stays stopped
	timedOut atomic.Bool
	timer    *time.Timer // set before the body is handed out, never replaced
}

// check runs on the timer: it closes a body whose Read has waited d, and
// otherwise re-arms for the moment the Read in progress (or one starting
// now) would reach d.
func (b *timedBody) check() {
	if b.done.Load() {
		return
	}
	next := b.d
	if start := b.reading.Load(); start != notReading {
		waited := time.Since(b.base) - time.Duration(start)
		if waited >= b.d {
			b.timedOut.Store(true)
			_ = b.rc.Close()
			return
		}
		next = b.d - waited
	}
	b.timer.Reset(next)
}

func (b *timedBody) Read(p []byte) (int, error) {
	b.reading.Store(int64(time.Since(b.base)))
	n, err := b.rc.Read(p)
	b.reading.Store(notReading)
	if err != nil {
		if b.timedOut.Load() {
			err = fmt.Errorf("%w after %s: %w", errReadTimeout, b.d, err)
		}
		b.done.Store(true)
		b.timer.Stop()
	}
	return n, err
}

func (b *timedBody) Close() error {
	b.done.Store(true)
	b.timer.Stop()
	return b.rc.Close()
}

// bedrockBody is the legacy bedrock_body: json.dumps with Python's default
// separators and this key order.
func (a *App) bedrockBody(req *chatRequest, history []any) ([]byte, error) {
	messages := append(history, compat.Object{{Key: "role", Value: "user"}, {Key: "content", Value: req.message}})
	return compat.Dumps(compat.Object{
		{Key: "anthropic_version", Value: anthropicVersion},
		{Key: "system", Value: a.cfg.SystemPrompt},
		{Key: "messages", Value: messages},
		{Key: "max_tokens", Value: req.maxTokens},
		{Key: "temperature", Value: req.temperature},
	}, compat.DumpOptions{})
}

// isThrottling is the legacy is_throttling: the service said ThrottlingException.
func isThrottling(err error) bool {
	var api smithy.APIError
	return errors.As(err, &api) && api.ErrorCode() == "ThrottlingException"
}

// errBadReply is a Bedrock body the legacy code cannot read (ValueError,
// KeyError or TypeError there): a 502.
var errBadReply = errors.New("bedrock returned an unexpected body")

// errReplyShape is a Bedrock body on which the legacy code raises an
// exception it does not catch (AttributeError): a 500 there.
var errReplyShape = errors.New("bedrock reply content is not a list of objects")

// reply is what /chat takes from an InvokeModel body.
type reply struct {
	text       string
	stopReason any
	usage      compat.Object
}

// parseReply reads an Anthropic messages response as the legacy /chat does:
//
//	result = json.loads(body)
//	reply = "".join(block["text"] for block in result["content"] if block.get("type") == "text")
//	stop_reason = result.get("stop_reason")
//	usage = {"input_tokens": result["usage"]["input_tokens"], "output_tokens": ...}
func parseReply(body []byte) (*reply, error) {
	v, err := compat.Unmarshal(body)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errBadReply, err)
	}
	result, ok := v.(compat.Object)
	if !ok {
		return nil, errBadReply // result["content"] on a list, str, number or None: TypeError
	}
	content, ok := result.Get("content")
	if !ok {
		return nil, errBadReply
	}
	var blocks []any
	switch c := content.(type) {
	case []any:
		blocks = c
	case compat.Object, string:
		// Iterating a dict or str yields str, and str has no .get.
		if s, isStr := c.(string); isStr && s == "" {
			break
		}
		if o, isObj := c.(compat.Object); isObj && len(o) == 0 {
			break
		}
		return nil, errReplyShape
	default:
		return nil, errBadReply // not iterable: TypeError
	}
	var texts []any
	for _, b := range blocks {
		block, ok := b.(compat.Object)
		if !ok {
			return nil, errReplyShape
		}
		if typ, _ := block.Get("type"); typ != "text" {
			continue
		}
		text, ok := block.Get("text")
		if !ok {
			return nil, errBadReply
		}
		texts = append(texts, text)
	}
	out := &reply{}
	for _, t := range texts {
		s, ok := t.(string)
		if !ok {
			return nil, errBadReply // str.join of a non-str: TypeError
		}
		out.text += s
	}
	out.stopReason, _ = result.Get("stop_reason")
	usage, ok := result.Get("usage")
	if !ok {
		return nil, errBadReply
	}
	u, ok := usage.(compat.Object)
	if !ok {
		return nil, errBadReply
	}
	in, okIn := u.Get("input_tokens")
	outTokens, okOut := u.Get("output_tokens")
	if !okIn || !okOut {
		return nil, errBadReply
	}
	out.usage = compat.Object{{Key: "input_tokens", Value: in}, {Key: "output_tokens", Value: outTokens}}
	return out, nil
}
