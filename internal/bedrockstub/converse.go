package bedrockstub

import (
	"fmt"
	"net/http"
	"strconv"
)

// defaultConverseMaxTokens applies when a Converse request sets no inferenceConfig.maxTokens.
const defaultConverseMaxTokens = 4096

// converseRequest is a validated Converse body.
type converseRequest struct {
	maxTokens int
	canonical []byte
	inputToks int
}

// parseConverse validates a Converse or ConverseStream body and returns the ValidationException message
// when it is invalid. Members it does not model (toolConfig, additionalModelRequestFields, ...) only
// feed the reply's hash.
func parseConverse(body []byte) (converseRequest, string) {
	if len(body) == 0 {
		body = []byte("{}")
	}
	v, err := decodeJSON(body)
	if err != nil {
		return converseRequest{}, "Malformed input request, please reformat your input and try again."
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return converseRequest{}, malformed("#: expected type: JSONObject, found: " + jsonType(v))
	}
	if _, ok := obj["messages"]; !ok {
		return converseRequest{}, "A conversation must start with a user message. Try again with a conversation that starts with a user message."
	}
	if msg := checkMessages(obj["messages"], false); msg != "" {
		return converseRequest{}, msg
	}
	if sys, ok := obj["system"]; ok {
		if _, ok := sys.([]any); !ok {
			return converseRequest{}, malformed("#/system: expected type: JSONArray, found: " + jsonType(sys))
		}
	}
	maxTokens := defaultConverseMaxTokens
	if ic, ok := obj["inferenceConfig"]; ok {
		cfg, ok := ic.(map[string]any)
		if !ok {
			return converseRequest{}, malformed("#/inferenceConfig: expected type: JSONObject, found: " + jsonType(ic))
		}
		if x, ok := cfg["maxTokens"]; ok {
			n, msg := nonNegativeInt(x, "inferenceConfig/maxTokens")
			if msg != "" {
				return converseRequest{}, msg
			}
			if n < 1 {
				return converseRequest{}, fmt.Sprintf("1 validation error detected: Value '%d' at 'inferenceConfig.maxTokens' failed to satisfy constraint: Member must have value greater than or equal to 1", n)
			}
			maxTokens = n
		}
		for _, k := range []string{"temperature", "topP"} {
			if x, ok := cfg[k]; ok {
				if msg := unitInterval(x, "inferenceConfig/"+k); msg != "" {
					return converseRequest{}, msg
				}
			}
		}
		if x, ok := cfg["stopSequences"]; ok {
			if msg := stringList(x, "inferenceConfig/stopSequences"); msg != "" {
				return converseRequest{}, msg
			}
		}
	}
	return converseRequest{
		maxTokens: maxTokens,
		canonical: canonical(v),
		inputToks: countInputTokens(obj["system"], obj["messages"]),
	}, ""
}

// Converse response shapes, members in the order the service writes them.
type (
	converseText struct {
		Text string `json:"text"`
	}
	converseMessage struct {
		Content []converseText `json:"content"`
		Role    string         `json:"role"`
	}
	converseOutput struct {
		Message converseMessage `json:"message"`
	}
	converseMetrics struct {
		LatencyMs int64 `json:"latencyMs"`
	}
	converseUsage struct {
		InputTokens  int `json:"inputTokens"`
		OutputTokens int `json:"outputTokens"`
		TotalTokens  int `json:"totalTokens"`
	}
	converseResponse struct {
		Metrics    converseMetrics `json:"metrics"`
		Output     converseOutput  `json:"output"`
		StopReason string          `json:"stopReason"`
		Usage      converseUsage   `json:"usage"`
	}
	messageStartEvent struct {
		Role string `json:"role"`
	}
	contentBlockDeltaEvent struct {
		ContentBlockIndex int          `json:"contentBlockIndex"`
		Delta             converseText `json:"delta"`
	}
	contentBlockStopEvent struct {
		ContentBlockIndex int `json:"contentBlockIndex"`
	}
	messageStopEvent struct {
		StopReason string `json:"stopReason"`
	}
	metadataEvent struct {
		Metrics converseMetrics `json:"metrics"`
		Usage   converseUsage   `json:"usage"`
	}
)

func newConverseUsage(in, out int) converseUsage {
	return converseUsage{InputTokens: in, OutputTokens: out, TotalTokens: in + out}
}

// converse serves Converse: POST /model/{modelId}/converse.
func (s *Server) converse(w http.ResponseWriter, r *http.Request) {
	req, ok := s.readRequest(w, r)
	if !ok || s.answerFault(r.Context(), w, req.fault, false) {
		return
	}
	cr, msg := parseConverse(req.body)
	if msg != "" {
		writeError(w, excValidation, msg)
		return
	}
	rep := generate(req.modelID, cr.canonical, cr.maxTokens)
	if s.wait(r.Context(), s.opts.TTFT+s.tokenDelay(rep.outputTokens())) != nil {
		panic(http.ErrAbortHandler)
	}
	body := marshalCompact(converseResponse{
		Metrics:    converseMetrics{LatencyMs: s.latencyMillis(rep.outputTokens())},
		Output:     converseOutput{Message: converseMessage{Content: []converseText{{Text: rep.text()}}, Role: "assistant"}},
		StopReason: rep.stopReason(),
		Usage:      newConverseUsage(cr.inputToks, rep.outputTokens()),
	})
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}

// converseStream serves ConverseStream: POST /model/{modelId}/converse-stream.
func (s *Server) converseStream(w http.ResponseWriter, r *http.Request) {
	req, ok := s.readRequest(w, r)
	if !ok || s.answerFault(r.Context(), w, req.fault, true) {
		return
	}
	cr, msg := parseConverse(req.body)
	if msg != "" {
		writeError(w, excValidation, msg)
		return
	}
	rep := generate(req.modelID, cr.canonical, cr.maxTokens)
	ctx := r.Context()
	if s.wait(ctx, s.opts.TTFT) != nil {
		panic(http.ErrAbortHandler)
	}
	es := newEventWriter(w, &s.frames)
	if es.event("messageStart", marshalCompact(messageStartEvent{Role: "assistant"})) != nil {
		return
	}
	for i, p := range rep.pieces {
		if req.fault == FaultStreamError && i == streamErrorAfter {
			break
		}
		if i > 0 && s.wait(ctx, s.tokenDelay(1)) != nil {
			panic(http.ErrAbortHandler) // cut the stream off, as a dropped connection would
		}
		if es.event("contentBlockDelta", marshalCompact(contentBlockDeltaEvent{Delta: converseText{Text: p}})) != nil {
			return
		}
	}
	if req.fault == FaultStreamError {
		_ = es.exception("modelStreamErrorException", modelStreamErrorPayload())
		return
	}
	if es.event("contentBlockStop", marshalCompact(contentBlockStopEvent{})) != nil {
		return
	}
	if es.event("messageStop", marshalCompact(messageStopEvent{StopReason: rep.stopReason()})) != nil {
		return
	}
	_ = es.event("metadata", marshalCompact(metadataEvent{
		Metrics: converseMetrics{LatencyMs: s.latencyMillis(rep.outputTokens())},
		Usage:   newConverseUsage(cr.inputToks, rep.outputTokens()),
	}))
}
