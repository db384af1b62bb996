package compat

import (
	"bufio"
	"bytes"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// vectorApp ports testdata/vector_app.py with the compat API, the way a
// Flask endpoint is meant to be ported. The HTTP vectors replay the requests
// gen_vectors.py sent to the real app under gunicorn.
func vectorApp(t testing.TB) http.Handler {
	t.Helper()
	rules := vectorRules()
	m, err := NewMap(rules...)
	if err != nil {
		t.Fatal(err)
	}
	const maxContentLength = 1024
	codec := &SessionCodec{SecretKey: "test-secret", Now: func() time.Time { return time.Unix(1700000000, 0) }}

	echo := func(w http.ResponseWriter, r *http.Request) {
		mt, _ := RouteMatch(r)
		args := Object{}
		for name, v := range mt.Params {
			typ := map[string]string{"string": "str", "int64": "int", "*big.Int": "int", "float64": "float"}[typeName(v)]
			if mt.Endpoint == "by_uuid" {
				typ = "UUID"
			}
			args = append(args, Member{name, []any{typ, mt.Param(name)}})
		}
		_ = WriteJSON(w, 200, map[string]any{"endpoint": mt.Endpoint, "method": r.Method, "args": args})
	}
	handlers := map[string]http.Handler{}
	for _, r := range rules {
		handlers[r.Endpoint] = http.HandlerFunc(echo)
	}
	handlers["static"] = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { WriteError(w, ErrNotFound) })
	handlers["opts"] = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = WriteJSON(w, 200, map[string]any{"endpoint": "opts", "method": r.Method})
	})
	handlers["json_echo"] = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v, err := GetJSONLimit(r, maxContentLength)
		if err != nil {
			WriteError(w, err)
			return
		}
		_ = WriteJSON(w, 200, v)
	})
	handlers["json_dumps"] = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v, err := GetJSONLimit(r, maxContentLength)
		if err != nil {
			WriteError(w, err)
			return
		}
		b, err := Dumps(v, DumpOptions{})
		if err != nil {
			WriteError(w, err)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Content-Length", strconv.Itoa(len(b)))
		_, _ = w.Write(b)
	})
	handlers["status"] = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = WriteJSON(w, int(Params(r)["code"].(int64)), map[string]any{"a": 1})
	})
	handlers["abort_code"] = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		code, _ := RouteMatch(r)
		WriteError(w, Abort(int(code.Params["code"].(int64)), ""))
	})
	handlers["abort_desc"] = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		WriteError(w, Abort(400, "Missing 'message' <field>\n& \"more\""))
	})
	handlers["abort_405"] = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		WriteError(w, &MethodNotAllowedError{Allowed: []string{"GET", "POST"}})
	})
	handlers["error"] = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		WriteError(w, errors.New("ZeroDivisionError"))
	})

	// Sessions: open, run the view, save (Flask's request cycle).
	sessionView := func(view func(s *Session) any) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			s, err := codec.Open(r)
			if err != nil {
				WriteError(w, err)
				return
			}
			body := view(s)
			if err := codec.SaveSession(w, s); err != nil {
				WriteError(w, err)
				return
			}
			_ = WriteJSON(w, 200, body)
		})
	}
	handlers["s_set"] = sessionView(func(s *Session) any {
		s.Set("conversation_id", "abc")
		return map[string]any{"ok": true}
	})
	handlers["s_read"] = sessionView(func(s *Session) any {
		v, _ := s.Get("conversation_id")
		return map[string]any{"conversation_id": v}
	})
	handlers["s_nontouch"] = sessionView(func(s *Session) any { return map[string]any{"touched": false} })
	handlers["s_permanent"] = sessionView(func(s *Session) any {
		s.SetPermanent(true)
		s.Set("conversation_id", "abc")
		return map[string]any{"ok": true}
	})
	handlers["s_unpermanent"] = sessionView(func(s *Session) any {
		s.SetPermanent(false)
		return map[string]any{"ok": true}
	})
	handlers["s_clear"] = sessionView(func(s *Session) any {
		s.Clear()
		return map[string]any{"cleared": true}
	})
	handlers["s_pop"] = sessionView(func(s *Session) any {
		s.Pop("missing")
		return map[string]any{"popped": true}
	})
	handlers["s_pop_present"] = sessionView(func(s *Session) any {
		v, _ := s.Pop("conversation_id")
		return map[string]any{"popped": v}
	})
	handlers["s_rich"] = sessionView(func(s *Session) any {
		msg := Object{{"role", "user"}, {"content", "h\u00e9llo \U0001F600 <&>"}}
		s.Set("history", []any{msg, msg, msg})
		s.Set("t", Tuple{int64(1), 2.5, "x"})
		s.Set("when", time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC))
		s.Set("raw", []byte("\x00\xffbytes"))
		s.Set("markup", Markup("<b>hi</b>"))
		id, _ := parsePyUUID("12345678-1234-5678-1234-567812345678")
		s.Set("id", id)
		s.Set("tagkey", Object{{" t", []any{int64(1)}}})
		s.Set("n", Object{{"big", new(big.Int).Lsh(big.NewInt(1), 70)}, {"neg", int64(-1)}, {"f", 1e-7}})
		return map[string]any{"ok": true}
	})
	handlers["s_big"] = sessionView(func(s *Session) any {
		var h []any
		for i := 0; i < 40; i++ {
			h = append(h, Object{{"role", "user"}, {"content", "message number " + strconv.Itoa(i)}})
		}
		s.Set("history", h)
		return map[string]any{"ok": true}
	})
	return m.Handler(handlers)
}

func typeName(v any) string {
	switch v.(type) {
	case string:
		return "string"
	case int64:
		return "int64"
	case *big.Int:
		return "*big.Int"
	case float64:
		return "float64"
	}
	return "?"
}

// serverHeaders are added by gunicorn, not the app.
var serverHeaders = map[string]bool{"Server": true, "Date": true, "Connection": true}

func replay(t *testing.T, h http.Handler, vs []httpVector) {
	t.Helper()
	for _, tt := range vs {
		raw := unb64(t, tt.Request)
		req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(raw)))
		if err != nil {
			t.Errorf("%s: parse request: %v", tt.Name, err)
			continue
		}
		req.RemoteAddr = "127.0.0.1:40000"
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		res := rec.Result()
		want := tt.Response
		if res.StatusCode != want.Status {
			t.Errorf("%s: status %d, want %d (%s)", tt.Name, res.StatusCode, want.Status, want.StatusLine)
		}
		if got, wantLine := "HTTP/1.1 "+StatusLine(res.StatusCode), want.StatusLine; got != wantLine {
			t.Errorf("%s: status line %q, want %q", tt.Name, got, wantLine)
		}
		wantHeader := http.Header{}
		for _, kv := range want.Headers {
			if !serverHeaders[kv[0]] {
				wantHeader.Add(kv[0], kv[1])
			}
		}
		for k, wv := range wantHeader {
			gv := res.Header.Values(k)
			if k == "Allow" && len(gv) == 1 && len(wv) == 1 {
				if !AllowEqual(gv[0], wv[0]) {
					t.Errorf("%s: Allow %q, want %q (as sets)", tt.Name, gv[0], wv[0])
				}
				continue
			}
			if k == "Set-Cookie" && !ZlibByteExact && sameSessionCookies(gv, wv) {
				continue // pure-Go zlib: same session, different compressed bytes
			}
			if !slices.Equal(gv, wv) {
				t.Errorf("%s: header %s = %q, want %q", tt.Name, k, gv, wv)
			}
		}
		for k := range res.Header {
			if _, ok := wantHeader[k]; !ok {
				t.Errorf("%s: extra header %s: %q", tt.Name, k, res.Header.Values(k))
			}
		}
		wantBody := unb64(t, want.Body)
		if got := rec.Body.Bytes(); !bytes.Equal(got, wantBody) {
			t.Errorf("%s: body\n got %q\nwant %q", tt.Name, short(string(got)), short(string(wantBody)))
		}
	}
}

func TestVectorsHTTP(t *testing.T) {
	v := loadVectors(t)
	if len(v.HTTP) < 600 {
		t.Fatalf("only %d http vectors", len(v.HTTP))
	}
	replay(t, vectorApp(t), v.HTTP)
}

func TestVectorsSessionHTTP(t *testing.T) {
	v := loadVectors(t)
	if len(v.SessionHTTP) < 90 {
		t.Fatalf("only %d session http vectors", len(v.SessionHTTP))
	}
	replay(t, vectorApp(t), v.SessionHTTP)
}

// sameSessionCookies reports whether two Set-Cookie lists carry the same
// attributes and session cookies that decode to the same session.
func sameSessionCookies(got, want []string) bool {
	if len(got) != len(want) {
		return false
	}
	c := &SessionCodec{SecretKey: "test-secret", Now: func() time.Time { return time.Unix(1700000000, 0) }}
	for i := range got {
		gv, gattrs, _ := strings.Cut(got[i], ";")
		wv, wattrs, _ := strings.Cut(want[i], ";")
		if gattrs != wattrs {
			return false
		}
		gs, err1 := c.Decode(strings.TrimPrefix(gv, "session="))
		ws, err2 := c.Decode(strings.TrimPrefix(wv, "session="))
		if err1 != nil || err2 != nil || !pyEqual(gs, ws) {
			return false
		}
	}
	return true
}

// vectorRules are vector_app.py's rules, in registration order.
func vectorRules() []Rule {
	return []Rule{
		// Flask registers its static route when the app is created, first.
		{Endpoint: "static", Pattern: "/static/<path:filename>"},
		{Endpoint: "health", Pattern: "/health"},
		{Endpoint: "chat", Pattern: "/chat/"},
		{Endpoint: "conversations", Pattern: "/api/conversations", Methods: []string{"GET", "POST"}},
		{Endpoint: "conversation", Pattern: "/api/conversations/<conversation_id>", Methods: []string{"GET", "DELETE", "PUT"}},
		{Endpoint: "item", Pattern: "/api/items/<int:item_id>"},
		{Endpoint: "signed", Pattern: "/api/signed/<int(signed=True):n>"},
		{Endpoint: "fixed", Pattern: "/api/fixed/<int(fixed_digits=3):n>"},
		{Endpoint: "range", Pattern: "/api/range/<int(min=1, max=10):n>"},
		{Endpoint: "floats", Pattern: "/api/floats/<float:x>"},
		{Endpoint: "files", Pattern: "/files/<path:subpath>"},
		{Endpoint: "files_edit", Pattern: "/files/<path:subpath>/edit", Methods: []string{"POST"}},
		{Endpoint: "dirs", Pattern: "/dirs/<path:p>/"},
		{Endpoint: "by_uuid", Pattern: "/u/<uuid:uid>"},
		{Endpoint: "lang", Pattern: "/lang/<string(length=2):code>"},
		{Endpoint: "lang_x", Pattern: "/lang/<string(minlength=3,maxlength=5):code>/x"},
		{Endpoint: "any_kind", Pattern: `/any/<any(a, b, "c d"):kind>`},
		{Endpoint: "post_only", Pattern: "/post-only", Methods: []string{"POST"}},
		{Endpoint: "items_static", Pattern: "/items/static"},
		{Endpoint: "items_name", Pattern: "/items/<name>"},
		{Endpoint: "items_int", Pattern: "/items/<int:n>"},
		{Endpoint: "a_x_b", Pattern: "/a/<x>/b"},
		{Endpoint: "a_c_y", Pattern: "/a/c/<y>"},
		{Endpoint: "nonstrict", Pattern: "/nonstrict/", NonStrictSlashes: true},
		{Endpoint: "nonstrict2", Pattern: "/nonstrict2", NonStrictSlashes: true},
		{Endpoint: "multi", Pattern: "/multi/<a>/<int:b>/<path:c>"},
		{Endpoint: "opts", Pattern: "/opts", Methods: []string{"GET", "OPTIONS"}},
		{Endpoint: "json_echo", Pattern: "/json", Methods: []string{"POST", "PUT"}},
		{Endpoint: "json_type", Pattern: "/json-type", Methods: []string{"POST"}},
		{Endpoint: "json_deep", Pattern: "/json-deep/<int:n>"},
		{Endpoint: "json_dumps", Pattern: "/json-dumps", Methods: []string{"POST"}},
		{Endpoint: "status", Pattern: "/status/<int:code>"},
		{Endpoint: "abort_code", Pattern: "/abort/<int:code>"},
		{Endpoint: "abort_desc", Pattern: "/abort-desc"},
		{Endpoint: "abort_405", Pattern: "/abort405"},
		{Endpoint: "error", Pattern: "/error"},
		{Endpoint: "s_set", Pattern: "/s/set"},
		{Endpoint: "s_read", Pattern: "/s/read"},
		{Endpoint: "s_nontouch", Pattern: "/s/nontouch"},
		{Endpoint: "s_permanent", Pattern: "/s/permanent"},
		{Endpoint: "s_unpermanent", Pattern: "/s/unpermanent"},
		{Endpoint: "s_clear", Pattern: "/s/clear"},
		{Endpoint: "s_pop", Pattern: "/s/pop"},
		{Endpoint: "s_pop_present", Pattern: "/s/pop-present"},
		{Endpoint: "s_rich", Pattern: "/s/rich"},
		{Endpoint: "s_big", Pattern: "/s/big"},
	}
}
