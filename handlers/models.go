package handlers

import (
	"net/http"

	"github.com/cutover/cutover/compat"
)

// The legacy app's constants (app.py).
const (
	anthropicVersion   = "bedrock-2023-05-31"
	defaultMaxTokens   = 1024
	defaultTemperature = 0.7
	maxTokensLimit     = 4096
	retryAfterSeconds  = "1"

	// DefaultModelID is BEDROCK_MODEL_ID's default.
	DefaultModelID = "anthropic.claude-3-5-sonnet-20240620-v1:0"
	// DefaultSystemPrompt is SYSTEM_PROMPT's default.
	DefaultSystemPrompt = "You are a helpful, concise assistant. Answer clearly and accurately. " +
		"If you do not know something, say so instead of guessing."
)

// model is one entry of the legacy MODELS dict: a model callers may pick and
// the largest max_tokens allowed for it.
type model struct {
	id        string
	maxTokens int
}

// models is MODELS in its insertion order, which /models and the validation
// message repeat.
var models = []model{
	{"anthropic.claude-3-5-sonnet-20240620-v1:0", 4096},
	{"anthropic.claude-3-5-haiku-20241022-v1:0", 4096},
	{"anthropic.claude-3-haiku-20240307-v1:0", 4096},
	{"anthropic.claude-3-opus-20240229-v1:0", 2048},
}

func modelLimit(id string) (int, bool) {
	for _, m := range models {
		if m.id == id {
			return m.maxTokens, true
		}
	}
	return 0, false
}

func modelIDs() []string {
	ids := make([]string, len(models))
	for i, m := range models {
		ids[i] = m.id
	}
	return ids
}

func (a *App) health(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, compat.Object{{Key: "status", Value: "ok"}})
}

func (a *App) models(w http.ResponseWriter, r *http.Request) {
	list := make([]any, len(models))
	for i, m := range models {
		list[i] = compat.Object{{Key: "id", Value: m.id}, {Key: "max_tokens", Value: m.maxTokens}}
	}
	writeJSON(w, http.StatusOK, compat.Object{{Key: "default", Value: a.cfg.ModelID}, {Key: "models", Value: list}})
}
