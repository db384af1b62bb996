package handlers

import (
	"context"
	"errors"
	"net/http"
	"strconv"

	"github.com/cutover/cutover/compat"
)

// getConversation is GET /conversations/<conversation_id>: every stored
// turn, byte for byte what the legacy jsonify gives (Content-Length
// included), without holding the whole list in memory (lists are never
// trimmed, and legacy's LRANGE 0 -1 of a huge one costs one worker, where
// here it would cost the process). A conversation of at most
// Config.ConversationPage turns is read in one LRANGE and answered at once.
// A longer one is read in pages of that many turns twice: a first pass
// encodes each page to measure the body (any unreadable turn or store error
// still gets legacy's answer, before anything is sent), the second sends it
// page by page. Turns appended in between are not part of the answer (the
// first pass fixed how many are). If a page no longer encodes to the size it
// had in the first pass (the conversation was deleted or rewritten, or Redis
// failed), the length is already sent, so the connection is cut instead of
// finishing a wrong answer.
func (a *App) getConversation(w http.ResponseWriter, r *http.Request) {
	id := compat.Param(r, "conversation_id")
	key, page := conversationKey(id), int64(a.cfg.ConversationPage)
	first, err := a.conversationPage(r.Context(), key, 0, page)
	if err != nil {
		a.historyFailure(w, err)
		return
	}
	if len(first) == 0 {
		writeAPIError(w, "conversation not found", "not_found", http.StatusNotFound)
		return
	}
	if int64(len(first)) < page {
		writeJSON(w, http.StatusOK, compat.Object{{Key: "conversation_id", Value: id}, {Key: "messages", Value: first}})
		return
	}

	// Pass 1: the size of each page's encoding, and of the whole body.
	head, err := compat.Marshal(compat.Object{{Key: "conversation_id", Value: id}, {Key: "messages", Value: []any{}}})
	if err != nil {
		compat.WriteError(w, &compat.HTTPError{Code: http.StatusInternalServerError, Err: err})
		return
	}
	head = head[:len(head)-len("]}")] // {"conversation_id":"…","messages":[
	type measured struct{ turns, size int }
	var pages []measured
	total := len(head) + len("]}\n")
	msgs := first
	for start := int64(0); len(msgs) > 0; start += page {
		enc, err := encodeMessages(msgs)
		if err != nil {
			a.historyFailure(w, err)
			return
		}
		pages = append(pages, measured{len(msgs), len(enc)})
		total += len(enc)
		if start > 0 {
			total++ // the comma between pages
		}
		if int64(len(msgs)) < page {
			break
		}
		if msgs, err = a.conversationPage(r.Context(), key, start+page, page); err != nil {
			a.historyFailure(w, err)
			return
		}
	}

	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(total))
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return
	}
	// Pass 2: the same pages again, written as they are encoded.
	if _, err := w.Write(head); err != nil {
		return
	}
	for i, want := range pages {
		msgs, err := a.conversationPage(r.Context(), key, int64(i)*page, int64(want.turns))
		var enc []byte
		if err == nil {
			enc, err = encodeMessages(msgs)
		}
		if err == nil && len(enc) != want.size {
			err = errConversationChanged
		}
		if err != nil {
			a.log.Error("conversation changed or failed while it was sent", "err", err)
			panic(http.ErrAbortHandler) // the length is sent: cut the connection
		}
		if i > 0 {
			enc = append([]byte{','}, enc...)
		}
		if _, err := w.Write(enc); err != nil {
			return
		}
	}
	_, _ = w.Write([]byte("]}\n"))
}

// errConversationChanged is a conversation whose turns changed between the
// two passes of getConversation.
var errConversationChanged = errors.New("conversation changed between measuring and sending it")

// conversationPage reads turns [start, start+n) of a conversation as the
// message objects of the answer.
func (a *App) conversationPage(ctx context.Context, key string, start, n int64) ([]any, error) {
	items, err := a.store.LRange(ctx, key, start, start+n-1).Result()
	if err != nil {
		return nil, storeErr("lrange", err)
	}
	messages := make([]any, 0, len(items))
	for _, item := range items {
		if t, ok := fastTurn(item); ok {
			messages = append(messages, compat.Object{
				{Key: "role", Value: t.role},
				{Key: "content", Value: t.content},
				{Key: "created_at", Value: t.createdAt},
			})
			continue
		}
		t, err := parseTurn(item, true)
		if err != nil {
			return nil, err
		}
		messages = append(messages, compat.Object{
			{Key: "role", Value: t.role},
			{Key: "content", Value: t.content},
			{Key: "created_at", Value: t.createdAt},
		})
	}
	return messages, nil
}

// encodeMessages is the comma-separated encoding of messages as they appear
// inside the answer's "messages" list. It encodes them at the depth they have
// there (inside the answer object and its list), so a deeply nested stored
// value fails exactly as it would in the whole answer.
func encodeMessages(messages []any) ([]byte, error) {
	if len(messages) == 0 {
		return nil, nil
	}
	b, err := compat.Marshal(compat.Object{{Key: "messages", Value: messages}})
	if err != nil {
		return nil, err
	}
	return b[len(`{"messages":[`) : len(b)-len("]}")], nil
}

// deleteConversation is DELETE /conversations/<conversation_id>: 204 with an
// empty text/html body (Flask's ("", 204)), or 404. In dry-run mode it only
// checks that the conversation exists.
func (a *App) deleteConversation(w http.ResponseWriter, r *http.Request) {
	key := conversationKey(compat.Param(r, "conversation_id"))
	var (
		n   int64
		err error
	)
	if IsDryRun(r.Context()) {
		n, err = a.store.Exists(r.Context(), key).Result()
	} else {
		noteWrite(r.Context())
		n, err = a.store.Del(r.Context(), key).Result()
	}
	if err != nil {
		a.storeFailure(w, storeErr("del", err))
		return
	}
	if n == 0 {
		writeAPIError(w, "conversation not found", "not_found", http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(http.StatusNoContent)
}
