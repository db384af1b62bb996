package bedrockstub

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strconv"
)

// anthropicVersion is the only anthropic_version Bedrock accepts for the messages API.
const anthropicVersion = "bedrock-2023-05-31"

// anthropicKeys are the top-level keys Bedrock accepts in an Anthropic messages body; it rejects others.
var anthropicKeys = map[string]bool{
	"anthropic_version": true, "anthropic_beta": true, "max_tokens": true, "messages": true,
	"system": true, "temperature": true, "top_p": true, "top_k": true, "stop_sequences": true,
	"tools": true, "tool_choice": true, "thinking": true,
}

// anthropicRequest is a validated Anthropic messages body.
type anthropicRequest struct {
	maxTokens int
	canonical []byte
	inputToks int
}

// malformed formats a validation message the way Bedrock words schema violations.
func malformed(detail string) string {
	return "Malformed input request: " + detail + ", please reformat your input and try again."
}

// parseAnthropic validates body like Bedrock does for Anthropic models and returns the ValidationException
// message when it is invalid.
func parseAnthropic(body []byte) (anthropicRequest, string) {
	v, err := decodeJSON(body)
	if err != nil {
		return anthropicRequest{}, "Malformed input request, please reformat your input and try again."
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return anthropicRequest{}, malformed("#: expected type: JSONObject, found: " + jsonType(v))
	}
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !anthropicKeys[k] {
			return anthropicRequest{}, malformed("#: extraneous key [" + k + "] is not permitted")
		}
	}
	for _, k := range []string{"anthropic_version", "max_tokens", "messages"} {
		if _, ok := obj[k]; !ok {
			return anthropicRequest{}, malformed("#: required key [" + k + "] not found")
		}
	}
	if ver, ok := obj["anthropic_version"].(string); !ok || ver != anthropicVersion {
		return anthropicRequest{}, "Invalid API version: anthropic_version must be " + strconv.Quote(anthropicVersion)
	}
	maxTokens, msg := positiveInt(obj["max_tokens"], "max_tokens")
	if msg != "" {
		return anthropicRequest{}, msg
	}
	if msg := checkMessages(obj["messages"], true); msg != "" {
		return anthropicRequest{}, msg
	}
	if sys, ok := obj["system"]; ok {
		switch sys.(type) {
		case string, []any:
		default:
			return anthropicRequest{}, malformed("#/system: expected type: String or JSONArray, found: " + jsonType(sys))
		}
	}
	for _, k := range []string{"temperature", "top_p"} {
		if x, ok := obj[k]; ok {
			if msg := unitInterval(x, k); msg != "" {
				return anthropicRequest{}, msg
			}
		}
	}
	if x, ok := obj["top_k"]; ok {
		if _, msg := nonNegativeInt(x, "top_k"); msg != "" {
			return anthropicRequest{}, msg
		}
	}
	if x, ok := obj["stop_sequences"]; ok {
		if msg := stringList(x, "stop_sequences"); msg != "" {
			return anthropicRequest{}, msg
		}
	}
	return anthropicRequest{
		maxTokens: maxTokens,
		canonical: canonical(v),
		inputToks: countInputTokens(obj["system"], obj["messages"]),
	}, ""
}

// checkMessages validates a messages array. The messages API allows a string as content, Converse only
// a list of content blocks.
func checkMessages(v any, stringContent bool) string {
	msgs, ok := v.([]any)
	if !ok {
		return malformed("#/messages: expected type: JSONArray, found: " + jsonType(v))
	}
	if len(msgs) == 0 {
		return malformed("#/messages: expected minimum item count: 1, found: 0")
	}
	for i, m := range msgs {
		obj, ok := m.(map[string]any)
		if !ok {
			return malformed(fmt.Sprintf("#/messages/%d: expected type: JSONObject, found: %s", i, jsonType(m)))
		}
		role, _ := obj["role"].(string)
		if role != "user" && role != "assistant" {
			return malformed(fmt.Sprintf("#/messages/%d/role: %s is not a valid enum value", i, strconv.Quote(role)))
		}
		if i == 0 && role != "user" {
			return "A conversation must start with a user message. Try again with a conversation that starts with a user message."
		}
		switch c := obj["content"].(type) {
		case string:
			if !stringContent {
				return malformed(fmt.Sprintf("#/messages/%d/content: expected type: JSONArray, found: String", i))
			}
			if c == "" {
				return fmt.Sprintf("messages.%d.content: text content blocks must be non-empty", i)
			}
		case []any:
			if len(c) == 0 {
				return fmt.Sprintf("messages.%d.content: at least one content block is required", i)
			}
		default:
			return malformed(fmt.Sprintf("#/messages/%d/content: expected type: String or JSONArray, found: %s", i, jsonType(obj["content"])))
		}
	}
	return ""
}

func jsonType(v any) string {
	switch v.(type) {
	case nil:
		return "Null"
	case string:
		return "String"
	case bool:
		return "Boolean"
	case json.Number:
		return "Number"
	case []any:
		return "JSONArray"
	case map[string]any:
		return "JSONObject"
	}
	return fmt.Sprintf("%T", v)
}

// positiveInt accepts an integer literal >= 1.
func positiveInt(v any, name string) (int, string) {
	n, msg := nonNegativeInt(v, name)
	if msg == "" && n < 1 {
		msg = malformed(fmt.Sprintf("#/%s: %d is not greater or equal to 1", name, n))
	}
	return n, msg
}

// nonNegativeInt accepts an integer literal >= 0 (not 1.0: the service's schema wants an Integer).
func nonNegativeInt(v any, name string) (int, string) {
	num, ok := v.(json.Number)
	if !ok {
		return 0, malformed("#/" + name + ": expected type: Integer, found: " + jsonType(v))
	}
	n, err := strconv.ParseInt(string(num), 10, 32)
	if err != nil {
		return 0, malformed("#/" + name + ": expected type: Integer, found: " + string(num))
	}
	if n < 0 {
		return 0, malformed(fmt.Sprintf("#/%s: %d is not greater or equal to 0", name, n))
	}
	return int(n), ""
}

func unitInterval(v any, name string) string {
	num, ok := v.(json.Number)
	if !ok {
		return malformed("#/" + name + ": expected type: Number, found: " + jsonType(v))
	}
	f, err := num.Float64()
	if err != nil || f < 0 || f > 1 {
		return malformed("#/" + name + ": " + string(num) + " is not in the range [0, 1]")
	}
	return ""
}

func stringList(v any, name string) string {
	list, ok := v.([]any)
	if !ok {
		return malformed("#/" + name + ": expected type: JSONArray, found: " + jsonType(v))
	}
	for i, e := range list {
		if _, ok := e.(string); !ok {
			return malformed(fmt.Sprintf("#/%s/%d: expected type: String, found: %s", name, i, jsonType(e)))
		}
	}
	return ""
}

// Anthropic response shapes, fields in the order the service writes them.
type (
	textBlock struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	usage struct {
		InputTokens  int `json:"input_tokens"`
		OutputTokens int `json:"output_tokens"`
	}
	message struct {
		ID           string      `json:"id"`
		Type         string      `json:"type"`
		Role         string      `json:"role"`
		Model        string      `json:"model"`
		Content      []textBlock `json:"content"`
		StopReason   *string     `json:"stop_reason"`
		StopSequence *string     `json:"stop_sequence"`
		Usage        usage       `json:"usage"`
	}
)

// invokeModel serves InvokeModel: POST /model/{modelId}/invoke.
func (s *Server) invokeModel(w http.ResponseWriter, r *http.Request) {
	req, ok := s.readRequest(w, r)
	if !ok || s.answerFault(r.Context(), w, req.fault, false) {
		return
	}
	ar, msg := parseAnthropic(req.body)
	if msg != "" {
		writeError(w, excValidation, msg)
		return
	}
	rep := generate(req.modelID, ar.canonical, ar.maxTokens)
	if s.wait(r.Context(), s.opts.TTFT+s.tokenDelay(rep.outputTokens())) != nil {
		panic(http.ErrAbortHandler)
	}
	stop := rep.stopReason()
	body := marshalCompact(message{
		ID: rep.id, Type: "message", Role: "assistant", Model: modelName(req.modelID),
		Content:    []textBlock{{Type: "text", Text: rep.text()}},
		StopReason: &stop,
		Usage:      usage{InputTokens: ar.inputToks, OutputTokens: rep.outputTokens()},
	})
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("X-Amzn-Bedrock-Invocation-Latency", strconv.FormatInt(s.latencyMillis(rep.outputTokens()), 10))
	h.Set("X-Amzn-Bedrock-Input-Token-Count", strconv.Itoa(ar.inputToks))
	h.Set("X-Amzn-Bedrock-Output-Token-Count", strconv.Itoa(rep.outputTokens()))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}

// streamErrorAfter is how many text deltas a stream-error stream sends before its exception frame.
const streamErrorAfter = 3

// invokeModelStream serves InvokeModelWithResponseStream: POST /model/{modelId}/invoke-with-response-stream.
func (s *Server) invokeModelStream(w http.ResponseWriter, r *http.Request) {
	req, ok := s.readRequest(w, r)
	if !ok || s.answerFault(r.Context(), w, req.fault, true) {
		return
	}
	ar, msg := parseAnthropic(req.body)
	if msg != "" {
		writeError(w, excValidation, msg)
		return
	}
	rep := generate(req.modelID, ar.canonical, ar.maxTokens)
	ctx := r.Context()
	if s.wait(ctx, s.opts.TTFT) != nil {
		panic(http.ErrAbortHandler)
	}
	w.Header().Set("X-Amzn-Bedrock-Content-Type", "application/json")
	es := newEventWriter(w, &s.frames)

	// chunk sends one Anthropic stream event as a Bedrock "chunk" event.
	chunk := func(event streamEvent) error {
		payload := marshalCompact(map[string]string{"bytes": base64.StdEncoding.EncodeToString(marshalCompact(event))})
		return es.event("chunk", payload)
	}
	start := message{
		ID: rep.id, Type: "message", Role: "assistant", Model: modelName(req.modelID),
		Content: []textBlock{}, Usage: usage{InputTokens: ar.inputToks, OutputTokens: 1},
	}
	zero := 0
	if chunk(streamEvent{Type: "message_start", Message: &start}) != nil {
		return
	}
	if chunk(streamEvent{Type: "content_block_start", Index: &zero, ContentBlock: &textBlock{Type: "text", Text: ""}}) != nil {
		return
	}
	for i, p := range rep.pieces {
		if req.fault == FaultStreamError && i == streamErrorAfter {
			break
		}
		if i > 0 && s.wait(ctx, s.tokenDelay(1)) != nil {
			panic(http.ErrAbortHandler) // cut the stream off, as a dropped connection would
		}
		if chunk(streamEvent{Type: "content_block_delta", Index: &zero, Delta: textBlock{Type: "text_delta", Text: p}}) != nil {
			return
		}
	}
	if req.fault == FaultStreamError {
		_ = es.exception("modelStreamErrorException", modelStreamErrorPayload())
		return
	}
	if chunk(streamEvent{Type: "content_block_stop", Index: &zero}) != nil {
		return
	}
	stopDelta := streamEvent{
		Type:  "message_delta",
		Delta: stopDelta{StopReason: rep.stopReason()},
		Usage: &outputUsage{OutputTokens: rep.outputTokens()},
	}
	if chunk(stopDelta) != nil {
		return
	}
	_ = chunk(streamEvent{Type: "message_stop", Metrics: &invocationMetrics{
		InputTokenCount:   ar.inputToks,
		OutputTokenCount:  rep.outputTokens(),
		InvocationLatency: s.latencyMillis(rep.outputTokens()),
		FirstByteLatency:  s.opts.TTFT.Milliseconds(),
	}})
}

// Anthropic stream events, as Bedrock wraps them in chunk events.
type (
	streamEvent struct {
		Type         string             `json:"type"`
		Message      *message           `json:"message,omitempty"`
		Index        *int               `json:"index,omitempty"`
		ContentBlock *textBlock         `json:"content_block,omitempty"`
		Delta        any                `json:"delta,omitempty"`
		Usage        *outputUsage       `json:"usage,omitempty"`
		Metrics      *invocationMetrics `json:"amazon-bedrock-invocationMetrics,omitempty"`
	}
	stopDelta struct {
		StopReason   string  `json:"stop_reason"`
		StopSequence *string `json:"stop_sequence"`
	}
	outputUsage struct {
		OutputTokens int `json:"output_tokens"`
	}
	invocationMetrics struct {
		InputTokenCount   int   `json:"inputTokenCount"`
		OutputTokenCount  int   `json:"outputTokenCount"`
		InvocationLatency int64 `json:"invocationLatency"`
		FirstByteLatency  int64 `json:"firstByteLatency"`
	}
)

func modelStreamErrorPayload() []byte {
	return marshalCompact(map[string]any{
		"message":            "The system encountered an unexpected error during processing. Try your request again.",
		"originalStatusCode": 500,
	})
}
