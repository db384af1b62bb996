package handlers

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"

	"github.com/cutover/cutover/compat"
)

// readChatRequest is the common start of /chat and /chat/stream:
// parse_chat_request(request.get_json()). It answers the request itself and
// returns false when the body is refused (415/413/400 pages from get_json,
// or the 400 validation error). body is request.get_data().
func (a *App) readChatRequest(w http.ResponseWriter, r *http.Request) (req *chatRequest, body []byte, ok bool) {
	data, err := compat.GetJSONLimit(r, a.cfg.MaxContentLength)
	if err != nil {
		compat.WriteError(w, err)
		return nil, nil, false
	}
	req, err = a.parseChatRequest(data)
	if err != nil {
		writeAPIError(w, err.Error(), "validation_error", http.StatusBadRequest)
		return nil, nil, false
	}
	// get_json cached the body: this returns the same bytes.
	body, err = compat.GetData(r, a.cfg.MaxContentLength)
	if err != nil {
		compat.WriteError(w, err)
		return nil, nil, false
	}
	return req, body, true
}

// conversation is a conversation id as the legacy code holds it: the str
// from the body, or whatever value the session carries (any JSON value or
// tagged Flask value: list, tuple, dict, UUID, Markup, datetime, bytes),
// used as Python uses it: its str() in the Redis key (f"conversation:{id}"),
// the value itself in the replies.
type conversation struct {
	value any
	key   string
}

// resolveConversation is the legacy resolve_conversation_id.
func (a *App) resolveConversation(r *http.Request, req *chatRequest, body []byte) (conversation, error) {
	if req.hasConversation {
		return conversation{req.conversationID, conversationKey(req.conversationID)}, nil
	}
	sess := session(r)
	v, _ := sess.Get("conversation_id")
	if v == nil {
		id := a.newID(body)
		sess.Set("conversation_id", id)
		return conversation{id, conversationKey(id)}, nil
	}
	s, err := compat.PyStr(v)
	if err != nil {
		return conversation{}, fmt.Errorf("session conversation_id: %w", err)
	}
	return conversation{v, conversationKey(s)}, nil
}

// storeFailure answers a Redis error as the legacy app: 503 JSON for
// REDIS_DOWN (its errorhandler), Werkzeug's 500 page otherwise.
func (a *App) storeFailure(w http.ResponseWriter, err error) {
	if errors.Is(err, errStoreDown) {
		a.log.Error("redis unavailable", "err", err)
		writeAPIError(w, "conversation store unavailable", "store_unavailable", http.StatusServiceUnavailable)
		return
	}
	a.log.Error("unhandled store error", "err", err)
	compat.WriteError(w, &compat.HTTPError{Code: http.StatusInternalServerError, Err: err})
}

// bedrockFailure answers a failed Bedrock call: 429 with Retry-After for
// throttling, 502 for everything else (service errors, timeouts, transport).
func (a *App) bedrockFailure(w http.ResponseWriter, op string, err error) {
	if isThrottling(err) {
		a.log.Warn("bedrock throttled", "op", op, "err", err)
		w.Header().Set("Retry-After", retryAfterSeconds)
		writeAPIError(w, "the model is busy, please retry shortly", "throttled", http.StatusTooManyRequests)
		return
	}
	a.log.Error("bedrock call failed", "op", op, "err", err)
	writeAPIError(w, "the model could not answer, please retry", "bedrock_error", http.StatusBadGateway)
}

// prepare runs what /chat and /chat/stream share before calling Bedrock.
func (a *App) prepare(w http.ResponseWriter, r *http.Request) (*chatRequest, conversation, []byte, bool) {
	req, body, ok := a.readChatRequest(w, r)
	if !ok {
		return nil, conversation{}, nil, false
	}
	conv, err := a.resolveConversation(r, req, body)
	if err != nil {
		compat.WriteError(w, &compat.HTTPError{Code: http.StatusInternalServerError, Err: err})
		return nil, conversation{}, nil, false
	}
	history, err := a.loadHistoryKey(r.Context(), conv.key)
	if err != nil {
		a.historyFailure(w, err)
		return nil, conversation{}, nil, false
	}
	payload, err := a.bedrockBody(req, history)
	if err != nil {
		compat.WriteError(w, &compat.HTTPError{Code: http.StatusInternalServerError, Err: err})
		return nil, conversation{}, nil, false
	}
	return req, conv, payload, true
}

func (a *App) historyFailure(w http.ResponseWriter, err error) {
	if errors.Is(err, errBadTurn) {
		a.log.Error("unreadable history", "err", err)
		compat.WriteError(w, &compat.HTTPError{Code: http.StatusInternalServerError, Err: err})
		return
	}
	a.storeFailure(w, err)
}

// chat is POST /chat.
func (a *App) chat(w http.ResponseWriter, r *http.Request) {
	req, conv, payload, ok := a.prepare(w, r)
	if !ok {
		return
	}
	ctx := r.Context()
	out, err := a.bedrock.InvokeModel(ctx, &bedrockruntime.InvokeModelInput{
		ModelId:     aws.String(req.model),
		Body:        payload,
		ContentType: aws.String("application/json"),
		Accept:      aws.String("application/json"),
	})
	if err != nil {
		a.bedrockFailure(w, "invoke_model", err)
		return
	}
	rep, err := parseReply(out.Body)
	if errors.Is(err, errReplyShape) {
		a.log.Error("bedrock reply not readable", "err", err)
		compat.WriteError(w, &compat.HTTPError{Code: http.StatusInternalServerError, Err: err})
		return
	}
	if err != nil {
		a.log.Error("bedrock returned an unexpected body", "err", err)
		writeAPIError(w, "the model could not answer, please retry", "bedrock_error", http.StatusBadGateway)
		return
	}
	// If Redis fails here the reply is dropped (503), as in the legacy app: a
	// 200 would promise a conversation the next turn cannot continue. A
	// client leaving now does not stop the write (the legacy worker would
	// not notice it either).
	if err := a.saveTurns(context.WithoutCancel(ctx), conv.key, req.message, rep.text); err != nil {
		a.storeFailure(w, err)
		return
	}
	writeJSON(w, http.StatusOK, compat.Object{
		{Key: "conversation_id", Value: conv.value},
		{Key: "reply", Value: rep.text},
		{Key: "model", Value: req.model},
		{Key: "stop_reason", Value: rep.stopReason},
		{Key: "usage", Value: rep.usage},
	})
}
