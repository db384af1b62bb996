package compat_test

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/cutover/cutover/compat"
)

// Porting
//
//	@app.route("/api/conversations/<conversation_id>", methods=["GET"])
//	def get_conversation(conversation_id):
//	    if not conversation_id.startswith("c"):
//	        abort(404)
//	    return jsonify({"id": conversation_id, "n": 1.0})
func Example() {
	m, err := compat.NewMap(
		// Flask always registers its static route: keep it so 404/405 match.
		compat.Rule{Endpoint: "static", Pattern: "/static/<path:filename>"},
		compat.Rule{Endpoint: "get_conversation", Pattern: "/api/conversations/<conversation_id>", Methods: []string{"GET"}},
	)
	if err != nil {
		panic(err)
	}
	h := m.Handler(map[string]http.Handler{
		"get_conversation": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			id := compat.Param(r, "conversation_id")
			if !strings.HasPrefix(id, "c") {
				compat.WriteError(w, compat.Abort(404, ""))
				return
			}
			_ = compat.WriteJSON(w, http.StatusOK, map[string]any{"id": id, "n": 1.0})
		}),
		"static": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			compat.WriteError(w, compat.ErrNotFound) // the app has no static folder
		}),
	})

	for _, req := range []struct{ method, path string }{
		{"GET", "/api/conversations/c1"},
		{"HEAD", "/api/conversations/c1"},
		{"OPTIONS", "/api/conversations/c1"},
		{"POST", "/api/conversations/c1"},
		{"GET", "/api/conversations/c1/"},
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(req.method, req.path, nil))
		body, _ := io.ReadAll(rec.Result().Body)
		fmt.Printf("%s %s -> %d len=%s allow=%q %q\n", req.method, req.path, rec.Code,
			rec.Header().Get("Content-Length"), rec.Header().Get("Allow"), firstLine(string(body)))
	}
	// Output:
	// GET /api/conversations/c1 -> 200 len=20 allow="" "{\"id\":\"c1\",\"n\":1.0}"
	// HEAD /api/conversations/c1 -> 200 len=20 allow="" ""
	// OPTIONS /api/conversations/c1 -> 200 len=0 allow="GET, HEAD, OPTIONS" ""
	// POST /api/conversations/c1 -> 405 len=153 allow="GET, HEAD, OPTIONS" "<!doctype html>"
	// GET /api/conversations/c1/ -> 404 len=207 allow="" "<!doctype html>"
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

// Porting a handler that reads request.get_json(), with Flask's error
// answers for a body that is not JSON, and the description Flask shows in
// debug mode.
func ExampleGetJSON() {
	for _, body := range []string{`{"message": "hi", "n": 1.0}`, `{"message": `} {
		r := httptest.NewRequest("POST", "/chat", strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		v, err := compat.GetJSON(r)
		var he *compat.HTTPError
		if errors.As(err, &he) {
			fmt.Println(he.Code, compat.DebugDescription(he.Err) != "")
			continue
		}
		out, _ := compat.Marshal(v)
		fmt.Println(string(out))
	}
	// Output:
	// {"message":"hi","n":1.0}
	// 400 true
}
