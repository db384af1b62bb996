package bedrockstub_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/types"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/cutover/cutover/internal/bedrockhttp"
	"github.com/cutover/cutover/internal/bedrockstub"
	"github.com/cutover/cutover/internal/testenv"
)

const modelID = "anthropic.claude-3-5-sonnet-20240620-v1:0"

// anthropicBody is an InvokeModel body asking text, with extra top-level keys merged in.
func anthropicBody(t testing.TB, text string, extra map[string]any) []byte {
	t.Helper()
	body := map[string]any{
		"anthropic_version": "bedrock-2023-05-31",
		"max_tokens":        512,
		"system":            "You are a stub.",
		"messages":          []any{map[string]any{"role": "user", "content": text}},
	}
	for k, v := range extra {
		body[k] = v
	}
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// anthropicMessage is the InvokeModel response body.
type anthropicMessage struct {
	ID           string  `json:"id"`
	Type         string  `json:"type"`
	Role         string  `json:"role"`
	Model        string  `json:"model"`
	StopReason   string  `json:"stop_reason"`
	StopSequence *string `json:"stop_sequence"`
	Content      []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	} `json:"content"`
	Usage struct {
		InputTokens  int `json:"input_tokens"`
		OutputTokens int `json:"output_tokens"`
	} `json:"usage"`
}

func (m anthropicMessage) text() string {
	var b strings.Builder
	for _, c := range m.Content {
		b.WriteString(c.Text)
	}
	return b.String()
}

func invoke(t *testing.T, c *bedrockruntime.Client, model string, body []byte) (anthropicMessage, *bedrockruntime.InvokeModelOutput) {
	t.Helper()
	out, err := c.InvokeModel(context.Background(), &bedrockruntime.InvokeModelInput{
		ModelId: aws.String(model), Body: body, ContentType: aws.String("application/json"),
	})
	if err != nil {
		t.Fatalf("InvokeModel: %v", err)
	}
	var m anthropicMessage
	if err := json.Unmarshal(out.Body, &m); err != nil {
		t.Fatalf("InvokeModel body %q: %v", out.Body, err)
	}
	return m, out
}

// streamResult is what a consumer of InvokeModelWithResponseStream sees.
type streamResult struct {
	events []map[string]any // decoded Anthropic stream events, in order
	text   string
	err    error // from the call or the stream
}

func (r streamResult) types() []string {
	var ts []string
	for _, e := range r.events {
		ts = append(ts, fmt.Sprint(e["type"]))
	}
	return ts
}

func invokeStream(ctx context.Context, c *bedrockruntime.Client, model string, body []byte, optFns ...func(*bedrockruntime.Options)) streamResult {
	var r streamResult
	out, err := c.InvokeModelWithResponseStream(ctx, &bedrockruntime.InvokeModelWithResponseStreamInput{
		ModelId: aws.String(model), Body: body, ContentType: aws.String("application/json"),
	}, append(optFns, bedrockhttp.OwnEventStreamCodec)...)
	if err != nil {
		r.err = err
		return r
	}
	stream := out.GetStream()
	defer stream.Close()
	var text strings.Builder
	for ev := range stream.Events() {
		chunk, ok := ev.(*types.ResponseStreamMemberChunk)
		if !ok {
			r.err = fmt.Errorf("unexpected event %T", ev)
			return r
		}
		var e map[string]any
		if err := json.Unmarshal(chunk.Value.Bytes, &e); err != nil {
			r.err = fmt.Errorf("chunk %q: %w", chunk.Value.Bytes, err)
			return r
		}
		r.events = append(r.events, e)
		if d, ok := e["delta"].(map[string]any); ok && d["type"] == "text_delta" {
			text.WriteString(d["text"].(string))
		}
	}
	r.text = text.String()
	r.err = stream.Err()
	return r
}

func converseInput(model, text string, maxTokens int32) *bedrockruntime.ConverseInput {
	return &bedrockruntime.ConverseInput{
		ModelId:         aws.String(model),
		System:          []types.SystemContentBlock{&types.SystemContentBlockMemberText{Value: "You are a stub."}},
		Messages:        []types.Message{{Role: types.ConversationRoleUser, Content: []types.ContentBlock{&types.ContentBlockMemberText{Value: text}}}},
		InferenceConfig: &types.InferenceConfiguration{MaxTokens: aws.Int32(maxTokens), Temperature: aws.Float32(0.5)},
	}
}

func converseText(t *testing.T, out *bedrockruntime.ConverseOutput) string {
	t.Helper()
	msg, ok := out.Output.(*types.ConverseOutputMemberMessage)
	if !ok {
		t.Fatalf("Converse output is %T", out.Output)
	}
	var b strings.Builder
	for _, c := range msg.Value.Content {
		txt, ok := c.(*types.ContentBlockMemberText)
		if !ok {
			t.Fatalf("content block %T", c)
		}
		b.WriteString(txt.Value)
	}
	return b.String()
}

// converseStreamResult is what a consumer of ConverseStream sees.
type converseStreamResult struct {
	kinds    []string
	text     string
	stop     types.StopReason
	metadata *types.ConverseStreamMetadataEvent
	err      error
}

func converseStream(ctx context.Context, c *bedrockruntime.Client, in *bedrockruntime.ConverseInput, optFns ...func(*bedrockruntime.Options)) converseStreamResult {
	var r converseStreamResult
	out, err := c.ConverseStream(ctx, &bedrockruntime.ConverseStreamInput{
		ModelId: in.ModelId, System: in.System, Messages: in.Messages, InferenceConfig: in.InferenceConfig,
	}, append(optFns, bedrockhttp.OwnEventStreamCodec)...)
	if err != nil {
		r.err = err
		return r
	}
	stream := out.GetStream()
	defer stream.Close()
	var text strings.Builder
	for ev := range stream.Events() {
		switch v := ev.(type) {
		case *types.ConverseStreamOutputMemberMessageStart:
			r.kinds = append(r.kinds, "messageStart:"+string(v.Value.Role))
		case *types.ConverseStreamOutputMemberContentBlockDelta:
			r.kinds = append(r.kinds, "contentBlockDelta")
			d, ok := v.Value.Delta.(*types.ContentBlockDeltaMemberText)
			if !ok {
				r.err = fmt.Errorf("delta %T", v.Value.Delta)
				return r
			}
			text.WriteString(d.Value)
		case *types.ConverseStreamOutputMemberContentBlockStop:
			r.kinds = append(r.kinds, "contentBlockStop")
		case *types.ConverseStreamOutputMemberMessageStop:
			r.kinds = append(r.kinds, "messageStop")
			r.stop = v.Value.StopReason
		case *types.ConverseStreamOutputMemberMetadata:
			r.kinds = append(r.kinds, "metadata")
			r.metadata = &v.Value
		default:
			r.err = fmt.Errorf("unexpected event %T", ev)
			return r
		}
	}
	r.text = text.String()
	r.err = stream.Err()
	return r
}

// withHeader adds a request header to one SDK call.
func withHeader(name, value string) func(*bedrockruntime.Options) {
	return func(o *bedrockruntime.Options) {
		o.APIOptions = append(o.APIOptions, smithyhttp.SetHeaderValue(name, value))
	}
}

func rawResponse(t *testing.T, md middleware.Metadata) *smithyhttp.Response {
	t.Helper()
	resp, ok := awsmiddleware.GetRawResponse(md).(*smithyhttp.Response)
	if !ok {
		t.Fatal("no raw response in the result metadata")
	}
	return resp
}

func assertRichText(t *testing.T, what, text string) {
	t.Helper()
	for _, want := range []string{"é", "ü", "日本語", "🚀", `"`, "<", ">", "&", "\n"} {
		if !strings.Contains(text, want) {
			t.Errorf("%s: reply lacks %q: %q", what, want, text)
		}
	}
}

func TestInvokeModelAndStreamAgree(t *testing.T) {
	c := testenv.BedrockClient(t, testenv.StartStub(t, bedrockstub.Options{}))
	body := anthropicBody(t, "Bonjour, ça va? 日本語 <b>&</b>", map[string]any{"temperature": 0.7})

	m, out := invoke(t, c, modelID, body)
	if aws.ToString(out.ContentType) != "application/json" {
		t.Errorf("content type %q", aws.ToString(out.ContentType))
	}
	if m.Type != "message" || m.Role != "assistant" || m.Model != "claude-3-5-sonnet-20240620" ||
		m.StopReason != "end_turn" || m.StopSequence != nil || len(m.Content) != 1 || m.Content[0].Type != "text" {
		t.Errorf("unexpected message shape: %+v", m)
	}
	if !strings.HasPrefix(m.ID, "msg_bdrk_") {
		t.Errorf("id %q", m.ID)
	}
	assertRichText(t, "InvokeModel", m.text())
	if m.Usage.InputTokens <= 0 || m.Usage.OutputTokens < 8 || m.Usage.OutputTokens > 40 {
		t.Errorf("usage %+v", m.Usage)
	}
	h := rawResponse(t, out.ResultMetadata).Header
	for name, want := range map[string]string{
		"X-Amzn-Bedrock-Input-Token-Count":  strconv.Itoa(m.Usage.InputTokens),
		"X-Amzn-Bedrock-Output-Token-Count": strconv.Itoa(m.Usage.OutputTokens),
		"X-Amzn-Bedrock-Invocation-Latency": "0",
	} {
		if got := h.Get(name); got != want {
			t.Errorf("header %s = %q, want %q", name, got, want)
		}
	}
	if id, ok := awsmiddleware.GetRequestIDMetadata(out.ResultMetadata); !ok || len(id) != 36 {
		t.Errorf("request id %q", id)
	}

	r := invokeStream(context.Background(), c, modelID, body)
	if r.err != nil {
		t.Fatalf("stream: %v", r.err)
	}
	if r.text != m.text() {
		t.Errorf("streamed text %q differs from InvokeModel's %q", r.text, m.text())
	}
	want := []string{"message_start", "content_block_start"}
	for range m.Usage.OutputTokens {
		want = append(want, "content_block_delta")
	}
	want = append(want, "content_block_stop", "message_delta", "message_stop")
	if got := r.types(); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("event types %v, want %v", got, want)
	}
	start := r.events[0]["message"].(map[string]any)
	if start["id"] != m.ID || start["model"] != m.Model {
		t.Errorf("message_start %v does not match InvokeModel's id %q", start, m.ID)
	}
	delta := r.events[len(r.events)-2]
	if delta["delta"].(map[string]any)["stop_reason"] != "end_turn" ||
		delta["usage"].(map[string]any)["output_tokens"] != float64(m.Usage.OutputTokens) {
		t.Errorf("message_delta %v", delta)
	}
	metrics := r.events[len(r.events)-1]["amazon-bedrock-invocationMetrics"].(map[string]any)
	if metrics["inputTokenCount"] != float64(m.Usage.InputTokens) || metrics["outputTokenCount"] != float64(m.Usage.OutputTokens) {
		t.Errorf("invocation metrics %v, usage %+v", metrics, m.Usage)
	}
}

func TestConverseAndStreamAgree(t *testing.T) {
	c := testenv.BedrockClient(t, testenv.StartStub(t, bedrockstub.Options{}))
	// An inference-profile ARN arrives percent-encoded (%3A, %2F); the reply depends on the decoded id.
	arn := "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-5-sonnet-20240620-v1:0"
	in := converseInput(arn, "Grüß Gott 🚀", 512)
	out, err := c.Converse(context.Background(), in)
	if err != nil {
		t.Fatalf("Converse: %v", err)
	}
	text := converseText(t, out)
	assertRichText(t, "Converse", text)
	if out.StopReason != types.StopReasonEndTurn {
		t.Errorf("stop reason %q", out.StopReason)
	}
	u := out.Usage
	if aws.ToInt32(u.InputTokens) <= 0 || aws.ToInt32(u.OutputTokens) < 8 ||
		aws.ToInt32(u.TotalTokens) != aws.ToInt32(u.InputTokens)+aws.ToInt32(u.OutputTokens) {
		t.Errorf("usage in %d out %d total %d", aws.ToInt32(u.InputTokens), aws.ToInt32(u.OutputTokens), aws.ToInt32(u.TotalTokens))
	}
	if out.Metrics == nil || aws.ToInt64(out.Metrics.LatencyMs) != 0 {
		t.Errorf("metrics %+v", out.Metrics)
	}

	r := converseStream(context.Background(), c, in)
	if r.err != nil {
		t.Fatalf("ConverseStream: %v", r.err)
	}
	if r.text != text {
		t.Errorf("streamed text %q differs from Converse's %q", r.text, text)
	}
	want := []string{"messageStart:assistant"}
	for range aws.ToInt32(u.OutputTokens) {
		want = append(want, "contentBlockDelta")
	}
	want = append(want, "contentBlockStop", "messageStop", "metadata")
	if strings.Join(r.kinds, ",") != strings.Join(want, ",") {
		t.Errorf("events %v, want %v", r.kinds, want)
	}
	if r.stop != types.StopReasonEndTurn || r.metadata == nil ||
		aws.ToInt32(r.metadata.Usage.OutputTokens) != aws.ToInt32(u.OutputTokens) ||
		aws.ToInt32(r.metadata.Usage.InputTokens) != aws.ToInt32(u.InputTokens) {
		t.Errorf("stop %q metadata %+v", r.stop, r.metadata)
	}

	// The same conversation under the plain model id gets another reply.
	other, err := c.Converse(context.Background(), converseInput(modelID, "Grüß Gott 🚀", 512))
	if err != nil {
		t.Fatalf("Converse: %v", err)
	}
	if converseText(t, other) == text {
		t.Error("model id does not change the reply")
	}
}

func TestMaxTokens(t *testing.T) {
	c := testenv.BedrockClient(t, testenv.StartStub(t, bedrockstub.Options{}))
	body := anthropicBody(t, "hi", map[string]any{"max_tokens": 3})
	m, _ := invoke(t, c, modelID, body)
	if m.StopReason != "max_tokens" || m.Usage.OutputTokens != 3 {
		t.Errorf("InvokeModel: stop %q, %d tokens; want max_tokens, 3", m.StopReason, m.Usage.OutputTokens)
	}
	r := invokeStream(context.Background(), c, modelID, body)
	if r.err != nil || r.text != m.text() {
		t.Fatalf("stream: %v, text %q, want %q", r.err, r.text, m.text())
	}
	if got := r.events[len(r.events)-2]["delta"].(map[string]any)["stop_reason"]; got != "max_tokens" {
		t.Errorf("stream stop reason %v", got)
	}

	out, err := c.Converse(context.Background(), converseInput(modelID, "hi", 2))
	if err != nil {
		t.Fatal(err)
	}
	if out.StopReason != types.StopReasonMaxTokens || aws.ToInt32(out.Usage.OutputTokens) != 2 {
		t.Errorf("Converse: stop %q, %d tokens", out.StopReason, aws.ToInt32(out.Usage.OutputTokens))
	}
	cs := converseStream(context.Background(), c, converseInput(modelID, "hi", 2))
	if cs.err != nil || cs.stop != types.StopReasonMaxTokens || cs.text != converseText(t, out) {
		t.Errorf("ConverseStream: %v, stop %q, text %q", cs.err, cs.stop, cs.text)
	}
}

// rawPost sends body to the stub without an SDK.
func rawPost(t *testing.T, url string, body []byte, header http.Header) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

func TestDeterminism(t *testing.T) {
	base := testenv.StartStub(t, bedrockstub.Options{})
	t.Cleanup(http.DefaultClient.CloseIdleConnections)
	invokeURL := base + "/model/" + url.PathEscape(modelID) + "/invoke"
	// Semantically equal bodies, written as Python's json.dumps and as Go's json.Marshal would.
	python := []byte(`{"anthropic_version": "bedrock-2023-05-31", "max_tokens": 300, "messages": [{"role": "user", "content": "caf\u00e9 <&> \ud83d\ude80"}], "temperature": 0.5}`)
	goStyle := []byte(`{"anthropic_version":"bedrock-2023-05-31","max_tokens":300,"messages":[{"content":"café \u003c\u0026\u003e 🚀","role":"user"}],"temperature":0.5}`)
	_, first := rawPost(t, invokeURL, python, nil)
	_, again := rawPost(t, invokeURL, python, nil)
	_, other := rawPost(t, invokeURL, goStyle, nil)
	if !bytes.Equal(first, again) || !bytes.Equal(first, other) {
		t.Fatalf("equal requests got different bytes:\n%s\n%s\n%s", first, again, other)
	}

	tests := []struct {
		name string
		give string
	}{
		{"temperature", `{"anthropic_version":"bedrock-2023-05-31","max_tokens":300,"messages":[{"content":"café <&> 🚀","role":"user"}],"temperature":0.7}`},
		{"temperature literal 0.50", `{"anthropic_version":"bedrock-2023-05-31","max_tokens":300,"messages":[{"content":"café <&> 🚀","role":"user"}],"temperature":0.50}`},
		{"message text", `{"anthropic_version":"bedrock-2023-05-31","max_tokens":300,"messages":[{"content":"cafe <&> 🚀","role":"user"}],"temperature":0.5}`},
		{"max_tokens", `{"anthropic_version":"bedrock-2023-05-31","max_tokens":301,"messages":[{"content":"café <&> 🚀","role":"user"}],"temperature":0.5}`},
	}
	var firstMsg anthropicMessage
	if err := json.Unmarshal(first, &firstMsg); err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		resp, b := rawPost(t, invokeURL, []byte(tt.give), nil)
		var m anthropicMessage
		if err := json.Unmarshal(b, &m); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d %s", tt.name, resp.StatusCode, b)
		}
		if m.text() == firstMsg.text() || m.ID == firstMsg.ID {
			t.Errorf("%s: a different request got the same reply %q", tt.name, m.text())
		}
	}

	// The SDK sees the very bytes a raw client does (same body, same reply).
	c := testenv.BedrockClient(t, base)
	out, err := c.InvokeModel(context.Background(), &bedrockruntime.InvokeModelInput{ModelId: aws.String(modelID), Body: python})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Body, first) {
		t.Errorf("SDK body %s differs from raw body %s", out.Body, first)
	}
}

func TestModelIDEncoding(t *testing.T) {
	base := testenv.StartStub(t, bedrockstub.Options{})
	t.Cleanup(http.DefaultClient.CloseIdleConnections)
	c := testenv.BedrockClient(t, base)
	arn := "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-haiku-20240307-v1:0"
	body := anthropicBody(t, "hello", nil)
	m, out := invoke(t, c, arn, body)
	if m.Model != "claude-3-haiku-20240307" {
		t.Errorf("model %q", m.Model)
	}
	_, raw := rawPost(t, base+"/model/"+url.PathEscape(arn)+"/invoke", body, nil)
	if !bytes.Equal(raw, out.Body) {
		t.Errorf("raw request with the escaped ARN got %s, SDK got %s", raw, out.Body)
	}
}

// faultCase is one fault and the typed errors the Go SDK must return for it.
type faultCase struct {
	fault      string
	status     int
	wantPlain  func(error) bool // InvokeModel, Converse, and the stream calls before the stream starts
	streamMidE bool             // streams fail mid-stream rather than at the call
}

func errorAs[T error](err error) bool {
	var target T
	return errors.As(err, &target)
}

var faultCases = []faultCase{
	{fault: "throttle", status: 429, wantPlain: errorAs[*types.ThrottlingException]},
	{fault: "unavailable", status: 503, wantPlain: errorAs[*types.ServiceUnavailableException]},
	{fault: "model-timeout", status: 408, wantPlain: errorAs[*types.ModelTimeoutException]},
	{fault: "validation", status: 400, wantPlain: errorAs[*types.ValidationException]},
	{fault: "stream-error", status: 424, wantPlain: errorAs[*types.ModelErrorException], streamMidE: true},
}

func httpStatus(err error) int {
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

// runOps calls all four operations with text in the prompt and per-call options.
type opResult struct {
	op     string
	err    error
	deltas int // text deltas received before the error, for streams
	stream bool
}

func runOps(c *bedrockruntime.Client, text string, optFns ...func(*bedrockruntime.Options)) []opResult {
	ctx := context.Background()
	body, _ := json.Marshal(map[string]any{
		"anthropic_version": "bedrock-2023-05-31", "max_tokens": 100,
		"messages": []any{map[string]any{"role": "user", "content": text}},
	})
	var res []opResult
	_, err := c.InvokeModel(ctx, &bedrockruntime.InvokeModelInput{ModelId: aws.String(modelID), Body: body}, optFns...)
	res = append(res, opResult{op: "InvokeModel", err: err})
	sr := invokeStream(ctx, c, modelID, body, optFns...)
	n := 0
	for _, e := range sr.events {
		if e["type"] == "content_block_delta" {
			n++
		}
	}
	res = append(res, opResult{op: "InvokeModelWithResponseStream", err: sr.err, deltas: n, stream: true})
	_, err = c.Converse(ctx, converseInput(modelID, text, 100), optFns...)
	res = append(res, opResult{op: "Converse", err: err})
	cr := converseStream(ctx, c, converseInput(modelID, text, 100), optFns...)
	n = 0
	for _, k := range cr.kinds {
		if k == "contentBlockDelta" {
			n++
		}
	}
	res = append(res, opResult{op: "ConverseStream", err: cr.err, deltas: n, stream: true})
	return res
}

func checkFault(t *testing.T, fc faultCase, res []opResult) {
	t.Helper()
	for _, r := range res {
		if r.stream && fc.streamMidE {
			if !errorAs[*types.ModelStreamErrorException](r.err) {
				t.Errorf("%s: error %v (%T), want *types.ModelStreamErrorException", r.op, r.err, r.err)
			}
			if r.deltas != 3 {
				t.Errorf("%s: %d text deltas before the exception, want 3", r.op, r.deltas)
			}
			continue
		}
		if !fc.wantPlain(r.err) {
			t.Errorf("%s: error %v (%T) is not the expected type", r.op, r.err, r.err)
		}
		if got := httpStatus(r.err); got != fc.status {
			t.Errorf("%s: status %d, want %d", r.op, got, fc.status)
		}
	}
}

func TestFaults(t *testing.T) {
	c := testenv.BedrockClient(t, testenv.StartStub(t, bedrockstub.Options{}))
	for _, fc := range faultCases {
		t.Run(fc.fault+"/header", func(t *testing.T) {
			checkFault(t, fc, runOps(c, "hello", withHeader(bedrockstub.FaultHeader, fc.fault)))
		})
		t.Run(fc.fault+"/marker", func(t *testing.T) {
			checkFault(t, fc, runOps(c, "please fail [[stub-fault:"+fc.fault+"]] now"))
		})
		t.Run(fc.fault+"/option", func(t *testing.T) {
			oc := testenv.BedrockClient(t, testenv.StartStub(t, bedrockstub.Options{Fault: fc.fault}))
			checkFault(t, fc, runOps(oc, "hello"))
			// A request can opt out of the server-wide fault.
			for _, r := range runOps(oc, "hello", withHeader(bedrockstub.FaultHeader, "none")) {
				if r.err != nil {
					t.Errorf("%s with X-Stub-Fault none: %v", r.op, r.err)
				}
			}
		})
	}
	t.Run("header beats marker", func(t *testing.T) {
		checkFault(t, faultCases[0], runOps(c, "[[stub-fault:unavailable]]", withHeader(bedrockstub.FaultHeader, "throttle")))
	})
	t.Run("unknown fault", func(t *testing.T) {
		for _, r := range runOps(c, "[[stub-fault:explode]]") {
			if !errorAs[*types.ValidationException](r.err) || !strings.Contains(r.err.Error(), `"explode"`) {
				t.Errorf("%s: %v", r.op, r.err)
			}
		}
	})
	t.Run("no fault", func(t *testing.T) {
		for _, r := range runOps(c, "hello") {
			if r.err != nil {
				t.Errorf("%s: %v", r.op, r.err)
			}
		}
	})
}

func TestErrorWire(t *testing.T) {
	base := testenv.StartStub(t, bedrockstub.Options{})
	t.Cleanup(http.DefaultClient.CloseIdleConnections)
	resp, b := rawPost(t, base+"/model/m/invoke", []byte(`{}`), http.Header{bedrockstub.FaultHeader: {"throttle"}})
	if resp.StatusCode != 429 ||
		resp.Header.Get("X-Amzn-ErrorType") != "ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/" ||
		resp.Header.Get("Content-Type") != "application/json" ||
		string(b) != `{"message":"Too many requests, please wait before trying again."}` {
		t.Errorf("throttle: %d %v %s", resp.StatusCode, resp.Header, b)
	}
	resp, b = rawPost(t, base+"/nothing/here", nil, nil)
	if resp.StatusCode != 404 || !strings.HasPrefix(resp.Header.Get("X-Amzn-ErrorType"), "UnknownOperationException:") {
		t.Errorf("unknown path: %d %v %s", resp.StatusCode, resp.Header, b)
	}
	r, err := http.Get(base + "/model/m/invoke")
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode != 404 || !strings.HasPrefix(r.Header.Get("X-Amzn-ErrorType"), "UnknownOperationException:") {
		t.Errorf("GET invoke: %d %v", r.StatusCode, r.Header)
	}
}

func TestValidation(t *testing.T) {
	c := testenv.BedrockClient(t, testenv.StartStub(t, bedrockstub.Options{}))
	msgs := `"messages":[{"role":"user","content":"hi"}]`
	tests := []struct {
		name string
		give string
		want string // substring of the message
	}{
		{"not JSON", `{"anthropic_version":`, "Malformed input request"},
		{"trailing data", `{"anthropic_version":"bedrock-2023-05-31","max_tokens":5,` + msgs + `} {}`, "Malformed input request"},
		{"array", `[1]`, "expected type: JSONObject"},
		{"model key", `{"anthropic_version":"bedrock-2023-05-31","max_tokens":5,"model":"x",` + msgs + `}`, "extraneous key [model] is not permitted"},
		{"stream key", `{"anthropic_version":"bedrock-2023-05-31","max_tokens":5,"stream":true,` + msgs + `}`, "extraneous key [stream] is not permitted"},
		{"no version", `{"max_tokens":5,` + msgs + `}`, "required key [anthropic_version] not found"},
		{"no max_tokens", `{"anthropic_version":"bedrock-2023-05-31",` + msgs + `}`, "required key [max_tokens] not found"},
		{"no messages", `{"anthropic_version":"bedrock-2023-05-31","max_tokens":5}`, "required key [messages] not found"},
		{"bad version", `{"anthropic_version":"2023-06-01","max_tokens":5,` + msgs + `}`, "anthropic_version"},
		{"max_tokens 0", `{"anthropic_version":"bedrock-2023-05-31","max_tokens":0,` + msgs + `}`, "max_tokens"},
		{"max_tokens float", `{"anthropic_version":"bedrock-2023-05-31","max_tokens":5.0,` + msgs + `}`, "expected type: Integer"},
		{"max_tokens string", `{"anthropic_version":"bedrock-2023-05-31","max_tokens":"5",` + msgs + `}`, "expected type: Integer"},
		{"empty messages", `{"anthropic_version":"bedrock-2023-05-31","max_tokens":5,"messages":[]}`, "minimum item count"},
		{"assistant first", `{"anthropic_version":"bedrock-2023-05-31","max_tokens":5,"messages":[{"role":"assistant","content":"x"}]}`, "must start with a user message"},
		{"bad role", `{"anthropic_version":"bedrock-2023-05-31","max_tokens":5,"messages":[{"role":"robot","content":"x"}]}`, "not a valid enum value"},
		{"empty content", `{"anthropic_version":"bedrock-2023-05-31","max_tokens":5,"messages":[{"role":"user","content":""}]}`, "non-empty"},
		{"temperature 2", `{"anthropic_version":"bedrock-2023-05-31","max_tokens":5,"temperature":2,` + msgs + `}`, "temperature"},
		{"stop_sequences", `{"anthropic_version":"bedrock-2023-05-31","max_tokens":5,"stop_sequences":[1],` + msgs + `}`, "stop_sequences"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.InvokeModel(context.Background(), &bedrockruntime.InvokeModelInput{ModelId: aws.String(modelID), Body: []byte(tt.give)})
			if !errorAs[*types.ValidationException](err) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("InvokeModel: %v, want ValidationException with %q", err, tt.want)
			}
			r := invokeStream(context.Background(), c, modelID, []byte(tt.give))
			if !errorAs[*types.ValidationException](r.err) || !strings.Contains(r.err.Error(), tt.want) {
				t.Errorf("InvokeModelWithResponseStream: %v, want ValidationException with %q", r.err, tt.want)
			}
		})
	}

	// Converse: the SDK validates some input itself, so the server's checks are reached with what it lets through.
	ctx := context.Background()
	assistantFirst := converseInput(modelID, "x", 10)
	assistantFirst.Messages[0].Role = types.ConversationRoleAssistant
	if _, err := c.Converse(ctx, assistantFirst); !errorAs[*types.ValidationException](err) || !strings.Contains(err.Error(), "must start with a user message") {
		t.Errorf("Converse assistant first: %v", err)
	}
	if _, err := c.Converse(ctx, converseInput(modelID, "x", 0)); !errorAs[*types.ValidationException](err) || !strings.Contains(err.Error(), "maxTokens") {
		t.Errorf("Converse maxTokens 0: %v", err)
	}
	if r := converseStream(ctx, c, &bedrockruntime.ConverseInput{ModelId: aws.String(modelID)}); !errorAs[*types.ValidationException](r.err) {
		t.Errorf("ConverseStream without messages: %v", r.err)
	}
}

// newStub starts a stub this test can inspect (count in-flight handlers, close).
func newStub(t *testing.T, opts bedrockstub.Options) (*bedrockstub.Server, string) {
	t.Helper()
	stub := bedrockstub.New(opts)
	ts := httptest.NewServer(stub)
	t.Cleanup(func() {
		stub.Close()
		ts.Close()
	})
	return stub, ts.URL
}

// waitIdle waits until stub handles no request; a handler that never ends fails the test.
func waitIdle(t *testing.T, stub *bedrockstub.Server) {
	t.Helper()
	waitInFlight(t, stub, 0)
}

// waitInFlight waits until stub handles exactly n requests, or fails the test after 10s.
func waitInFlight(t *testing.T, stub *bedrockstub.Server, n int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for stub.InFlight() != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d requests in flight, want %d", stub.InFlight(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestHangEndsWhenClientLeaves(t *testing.T) {
	stub, base := newStub(t, bedrockstub.Options{})
	c := testenv.BedrockClient(t, base)
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			text := "wait [[stub-fault:hang]]"
			switch i {
			case 0:
				_, errs[i] = c.InvokeModel(ctx, &bedrockruntime.InvokeModelInput{ModelId: aws.String(modelID), Body: anthropicBody(t, text, nil)})
			case 1:
				errs[i] = invokeStream(ctx, c, modelID, anthropicBody(t, text, nil)).err
			case 2:
				_, errs[i] = c.Converse(ctx, converseInput(modelID, text, 10))
			case 3:
				errs[i] = converseStream(ctx, c, converseInput(modelID, text, 10)).err
			}
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("call %d: %v, want the client's deadline", i, err)
		}
	}
	waitIdle(t, stub)
}

func TestCloseReleasesHangAndLatency(t *testing.T) {
	stub, base := newStub(t, bedrockstub.Options{TTFT: time.Hour})
	c := testenv.BedrockClient(t, base)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	errs := make(chan error, 2)
	go func() {
		_, err := c.InvokeModel(ctx, &bedrockruntime.InvokeModelInput{ModelId: aws.String(modelID), Body: anthropicBody(t, "[[stub-fault:hang]]", nil)})
		errs <- err
	}()
	go func() { errs <- invokeStream(ctx, c, modelID, anthropicBody(t, "slow", nil)).err }()
	waitInFlight(t, stub, 2)
	stub.Close()
	for range 2 {
		err := <-errs
		if err == nil || errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("call ended with %v, want a dropped connection", err)
		}
	}
	waitIdle(t, stub)
}

func TestLatencyModel(t *testing.T) {
	opts := bedrockstub.Options{TTFT: 40 * time.Millisecond, TokensPerSecond: 1000}
	c := testenv.BedrockClient(t, testenv.StartStub(t, opts))
	body := anthropicBody(t, "latency", nil)

	start := time.Now()
	m, out := invoke(t, c, modelID, body)
	elapsed := time.Since(start)
	modelled := opts.TTFT + time.Duration(m.Usage.OutputTokens)*time.Millisecond
	if elapsed < modelled {
		t.Errorf("InvokeModel answered after %v, before the modelled %v", elapsed, modelled)
	}
	if got := rawResponse(t, out.ResultMetadata).Header.Get("X-Amzn-Bedrock-Invocation-Latency"); got != strconv.FormatInt(modelled.Milliseconds(), 10) {
		t.Errorf("invocation latency header %q, want %d", got, modelled.Milliseconds())
	}

	start = time.Now()
	r := invokeStream(context.Background(), c, modelID, body)
	if r.err != nil || r.text != m.text() {
		t.Fatalf("stream: %v", r.err)
	}
	// The first token comes after TTFT, each later one 1/TokensPerSecond after the previous.
	if elapsed := time.Since(start); elapsed < opts.TTFT+time.Duration(m.Usage.OutputTokens-1)*time.Millisecond {
		t.Errorf("stream took %v, less than modelled", elapsed)
	}
	metrics := r.events[len(r.events)-1]["amazon-bedrock-invocationMetrics"].(map[string]any)
	if metrics["firstByteLatency"] != float64(40) || metrics["invocationLatency"] != float64(modelled.Milliseconds()) {
		t.Errorf("metrics %v, want firstByteLatency 40, invocationLatency %d", metrics, modelled.Milliseconds())
	}
}

func TestConcurrentStreams(t *testing.T) {
	c := testenv.BedrockClient(t, testenv.StartStub(t, bedrockstub.Options{}))
	const calls, workers = 200, 32
	// Expected texts come from InvokeModel and Converse; the streams must reproduce them exactly.
	const distinct = 8
	bodies := make([][]byte, distinct)
	wantInvoke := make([]string, distinct)
	wantConverse := make([]string, distinct)
	for k := range distinct {
		bodies[k] = anthropicBody(t, fmt.Sprintf("load %d", k), nil)
		m, _ := invoke(t, c, modelID, bodies[k])
		wantInvoke[k] = m.text()
		out, err := c.Converse(context.Background(), converseInput(modelID, fmt.Sprintf("load %d", k), 512))
		if err != nil {
			t.Fatal(err)
		}
		wantConverse[k] = converseText(t, out)
	}
	jobs := make(chan int)
	var mu sync.Mutex
	var failures []string
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				k := i % distinct
				var err error
				var text, want string
				if i%2 == 0 {
					r := invokeStream(context.Background(), c, modelID, bodies[k])
					err, text, want = r.err, r.text, wantInvoke[k]
				} else {
					r := converseStream(context.Background(), c, converseInput(modelID, fmt.Sprintf("load %d", k), 512))
					err, text, want = r.err, r.text, wantConverse[k]
				}
				if err == nil && text != want {
					err = fmt.Errorf("text %q, want %q", text, want)
				}
				if err != nil {
					mu.Lock()
					failures = append(failures, fmt.Sprintf("call %d: %v", i, err))
					mu.Unlock()
				}
			}
		}()
	}
	for i := range calls {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	if len(failures) > 0 {
		t.Errorf("%d of %d streaming calls failed; first: %s", len(failures), calls, failures[0])
	}
}

// TestStreamsFlushEachEvent reads the first text delta of a slowly paced stream and counts the frames
// the server had written by then: without a flush per frame, net/http would hold them until its buffer
// filled (about ten frames). Then the client leaves mid-stream, and the handler must end.
func TestStreamsFlushEachEvent(t *testing.T) {
	stub, base := newStub(t, bedrockstub.Options{TokensPerSecond: 5})
	c := testenv.BedrockClient(t, base)

	t.Run("InvokeModelWithResponseStream", func(t *testing.T) {
		before := stub.FramesSent()
		out, err := c.InvokeModelWithResponseStream(context.Background(), &bedrockruntime.InvokeModelWithResponseStreamInput{
			ModelId: aws.String(modelID), Body: anthropicBody(t, "slow", nil),
		}, bedrockhttp.OwnEventStreamCodec)
		if err != nil {
			t.Fatal(err)
		}
		stream := out.GetStream()
		for ev := range stream.Events() {
			chunk := ev.(*types.ResponseStreamMemberChunk)
			if strings.Contains(string(chunk.Value.Bytes), "content_block_delta") {
				break
			}
		}
		if n := stub.FramesSent() - before; n > 4 {
			t.Errorf("the server had written %d frames when the client saw the first delta, want at most 4", n)
		}
		stream.Close()
		waitIdle(t, stub)
	})
	t.Run("ConverseStream", func(t *testing.T) {
		in := converseInput(modelID, "slow", 100)
		before := stub.FramesSent()
		out, err := c.ConverseStream(context.Background(), &bedrockruntime.ConverseStreamInput{
			ModelId: in.ModelId, Messages: in.Messages, InferenceConfig: in.InferenceConfig,
		}, bedrockhttp.OwnEventStreamCodec)
		if err != nil {
			t.Fatal(err)
		}
		stream := out.GetStream()
		for ev := range stream.Events() {
			if _, ok := ev.(*types.ConverseStreamOutputMemberContentBlockDelta); ok {
				break
			}
		}
		if n := stub.FramesSent() - before; n > 4 {
			t.Errorf("the server had written %d frames when the client saw the first delta, want at most 4", n)
		}
		stream.Close()
		waitIdle(t, stub)
	})
}
