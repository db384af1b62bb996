package handlers

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/types"

	"github.com/cutover/cutover/compat"
	"github.com/cutover/cutover/internal/bedrockhttp"
)

// sse is the legacy sse(event, payload) for payloads that always encode
// (strings and decoded JSON values).
func sse(event string, payload compat.Object) []byte {
	b, err := trySSE(event, payload)
	if err != nil {
		panic(err)
	}
	return b
}

// trySSE is the legacy sse(event, payload): "event: E\ndata:
// json.dumps(payload)\n\n", with the standard library's json.dumps (no
// Flask provider: a UUID, datetime or bytes value raises TypeError).
func trySSE(event string, payload compat.Object) ([]byte, error) {
	data, err := compat.Dumps(payload, compat.DumpOptions{Stdlib: true})
	if err != nil {
		return nil, err
	}
	b := make([]byte, 0, len(event)+len(data)+16)
	b = append(b, "event: "...)
	b = append(b, event...)
	b = append(b, "\ndata: "...)
	b = append(b, data...)
	return append(b, "\n\n"...), nil
}

// index is Python's v[key] on a decoded JSON value: it succeeds only on a
// dict holding key (KeyError, TypeError otherwise).
func index(v any, key string) (any, bool) {
	o, ok := v.(compat.Object)
	if !ok {
		return nil, false
	}
	return o.Get(key)
}

// errStreamShape is an event the legacy generator fails on (any exception
// inside its try): reported in-band as the error event.
var errStreamShape = errors.New("unexpected bedrock stream event")

// streamState is what the legacy generate() accumulates.
type streamState struct {
	parts      []any
	usage      compat.Object
	stopReason any
	buf        []byte // the last delta event, reused
}

// Pieces of sse("delta", {"text": text}).
const (
	deltaHead = "event: delta\ndata: {\"text\": "
	deltaTail = "}\n\n"
)

// delta is sse("delta", {"text": text}). A string text, the usual case, is
// written into st.buf, valid until the next call: a stream sends many
// deltas, and composing the event by hand (json.dumps of a one-key object is
// its key, the separator and the value's encoding) spares an object, an
// encoding and a copy per delta.
func (st *streamState) delta(text any) []byte {
	s, ok := text.(string)
	if !ok {
		return sse("delta", compat.Object{{Key: "text", Value: text}})
	}
	st.buf = append(st.buf[:0], deltaHead...)
	st.buf = compat.AppendQuoteASCII(st.buf, s)
	st.buf = append(st.buf, deltaTail...)
	return st.buf
}

// handleChunk is one iteration of the legacy loop over the event stream. It
// returns the SSE delta to send, if any.
func (st *streamState) handleChunk(payload []byte) ([]byte, error) {
	v, err := compat.Unmarshal(payload)
	if err != nil {
		return nil, err
	}
	data, ok := v.(compat.Object)
	if !ok {
		return nil, errStreamShape // data.get on a non-dict: AttributeError
	}
	kind, _ := data.Get("type")
	switch kind {
	case "message_start":
		msg, _ := data.Get("message")
		usage, ok := index(msg, "usage")
		if !ok {
			return nil, errStreamShape
		}
		in, ok := index(usage, "input_tokens")
		if !ok {
			return nil, errStreamShape
		}
		st.usage.Set("input_tokens", in)
	case "content_block_delta":
		delta, ok := data.Get("delta")
		if !ok {
			return nil, errStreamShape
		}
		d, ok := delta.(compat.Object)
		if !ok {
			return nil, errStreamShape
		}
		if typ, _ := d.Get("type"); typ != "text_delta" {
			return nil, nil
		}
		text, ok := d.Get("text")
		if !ok {
			return nil, errStreamShape
		}
		st.parts = append(st.parts, text)
		return st.delta(text), nil
	case "message_delta":
		delta, ok := data.Get("delta")
		if !ok {
			return nil, errStreamShape
		}
		d, ok := delta.(compat.Object)
		if !ok {
			return nil, errStreamShape
		}
		st.stopReason, _ = d.Get("stop_reason")
		usage, _ := data.Get("usage")
		out, ok := index(usage, "output_tokens")
		if !ok {
			return nil, errStreamShape
		}
		st.usage.Set("output_tokens", out)
	}
	return nil, nil
}

// startStream makes the streaming call on a goroutine of its own and waits
// for it. The SDK's call chain is about ninety frames deep (some 20 KiB of
// stack): made on the handler's goroutine, it would grow that stack to
// 32 KiB, which the goroutine then keeps while it relays the stream for
// seconds or minutes (the runtime only halves a stack, at a GC, once three
// quarters of it are unused). The call's goroutine ends as soon as the
// response starts, so its deep stack is used again by the next call instead
// of being held by every open stream. A panic in the call is re-raised on
// the handler's goroutine, where the App's recoverer handles it.
func startStream(ctx context.Context, b StreamInvoker, in *bedrockruntime.InvokeModelWithResponseStreamInput) (*bedrockruntime.InvokeModelWithResponseStreamOutput, error) {
	type result struct {
		out   *bedrockruntime.InvokeModelWithResponseStreamOutput
		err   error
		panic any
	}
	done := make(chan result, 1)
	go func() {
		var r result
		defer func() {
			if p := recover(); p != nil {
				r.panic = p
			}
			done <- r
		}()
		// Each stream gets its own event-stream decoder: the SDK shares one per
		// client, a data race between concurrent streams (smithy-go#714).
		r.out, r.err = b.InvokeModelWithResponseStream(ctx, in, bedrockhttp.OwnEventStreamCodec)
	}()
	r := <-done
	if r.panic != nil {
		panic(r.panic)
	}
	return r.out, r.err
}

// chatStream is POST /chat/stream: the answer as server-sent events, each
// delta flushed as Bedrock sends it. A client that goes away cancels the
// Bedrock call (the request context) and nothing is saved.
func (a *App) chatStream(w http.ResponseWriter, r *http.Request) {
	req, conv, payload, ok := a.prepare(w, r)
	if !ok {
		return
	}
	// callCtx ends when the client goes away, and when Bedrock is silent for
	// BedrockTimeout between two events (botocore's read_timeout; the client
	// from NewBedrockClient enforces it too, this covers any Bedrock in Deps).
	callCtx, cancel := context.WithCancel(r.Context())
	defer cancel()
	idle := time.AfterFunc(a.cfg.BedrockTimeout, cancel)
	defer idle.Stop()

	out, err := startStream(callCtx, a.bedrock, &bedrockruntime.InvokeModelWithResponseStreamInput{
		ModelId:     aws.String(req.model),
		Body:        payload,
		ContentType: aws.String("application/json"),
		Accept:      aws.String("application/json"),
	})
	if err != nil {
		a.bedrockFailure(w, "invoke_model_with_response_stream", err)
		return
	}
	stream := out.GetStream()
	defer stream.Close()

	w.Header().Set("Content-Type", "text/event-stream; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	send := func(b []byte) bool {
		if _, err := w.Write(b); err != nil {
			return false
		}
		return rc.Flush() == nil
	}

	st := &streamState{usage: compat.Object{{Key: "input_tokens", Value: int64(0)}, {Key: "output_tokens", Value: int64(0)}}}
	var streamErr error
	for ev := range stream.Events() {
		// Only the wait for Bedrock counts, not a slow client's writes.
		idle.Stop()
		chunk, ok := ev.(*types.ResponseStreamMemberChunk)
		if !ok {
			idle.Reset(a.cfg.BedrockTimeout)
			continue
		}
		delta, err := st.handleChunk(chunk.Value.Bytes)
		if err != nil {
			streamErr = err
			break
		}
		if delta != nil && !send(delta) {
			a.log.Info("client went away during the stream", "conversation", conv.key)
			panic(http.ErrAbortHandler) // cut short, not finished: the server logs it so (499)
		}
		idle.Reset(a.cfg.BedrockTimeout)
	}
	if streamErr == nil {
		streamErr = stream.Err()
	}
	if r.Context().Err() != nil {
		a.log.Info("client went away during the stream", "conversation", conv.key)
		panic(http.ErrAbortHandler)
	}
	if streamErr != nil {
		a.log.Error("bedrock stream failed", "err", streamErr)
		send(sse("error", compat.Object{{Key: "error", Value: "the model stream failed"}, {Key: "code", Value: "bedrock_error"}}))
		return
	}
	stream.Close()

	var text strings.Builder
	for _, p := range st.parts {
		s, ok := p.(string)
		if !ok {
			// "".join raises TypeError outside the generator's try: the
			// legacy server drops the connection mid-stream.
			a.log.Error("bedrock stream delta text is not a string")
			panic(http.ErrAbortHandler)
		}
		text.WriteString(s)
	}
	// Once the answer is complete it is stored, as in the legacy app, even if
	// the client leaves now.
	if err := a.saveTurns(context.WithoutCancel(r.Context()), conv.key, req.message, text.String()); err != nil {
		if !errors.Is(err, errStoreDown) {
			a.log.Error("unhandled store error after stream", "err", err)
			panic(http.ErrAbortHandler)
		}
		a.log.Error("redis unavailable after stream", "err", err)
		send(sse("error", compat.Object{{Key: "error", Value: "conversation store unavailable"}, {Key: "code", Value: "store_unavailable"}}))
		return
	}
	done, err := trySSE("done", compat.Object{
		{Key: "conversation_id", Value: conv.value},
		{Key: "usage", Value: st.usage},
		{Key: "stop_reason", Value: st.stopReason},
	})
	if err != nil {
		// A session conversation_id json.dumps cannot write (UUID, datetime,
		// bytes): the TypeError escapes the legacy generator after the turns
		// were stored, and the server drops the connection mid-stream.
		a.log.Error("stream done event not serialisable", "err", err)
		panic(http.ErrAbortHandler)
	}
	send(done)
}
