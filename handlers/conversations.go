package handlers

import (
	"net/http"

	"github.com/cutover/cutover/compat"
)

// getConversation is GET /conversations/<conversation_id>: every stored turn.
func (a *App) getConversation(w http.ResponseWriter, r *http.Request) {
	id := compat.Param(r, "conversation_id")
	items, err := a.store.LRange(r.Context(), conversationKey(id), 0, -1).Result()
	if err != nil {
		a.storeFailure(w, storeErr("lrange", err))
		return
	}
	if len(items) == 0 {
		writeAPIError(w, "conversation not found", "not_found", http.StatusNotFound)
		return
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
			a.historyFailure(w, err)
			return
		}
		messages = append(messages, compat.Object{
			{Key: "role", Value: t.role},
			{Key: "content", Value: t.content},
			{Key: "created_at", Value: t.createdAt},
		})
	}
	writeJSON(w, http.StatusOK, compat.Object{{Key: "conversation_id", Value: id}, {Key: "messages", Value: messages}})
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
