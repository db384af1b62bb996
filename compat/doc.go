// Package compat reproduces the wire behaviour of Flask 3.1 / Werkzeug 3.1
// (behind gunicorn) in Go, so a Flask endpoint can be ported byte for byte:
// same status, same header fields and values, same body bytes. It imports
// no other package of cutover.
//
// What it covers, each checked against vectors generated from the installed
// Flask, Werkzeug and itsdangerous, served by a real gunicorn
// (testdata/gen_vectors.py writes testdata/vectors.json; the tests replay
// every request through a Go port of testdata/vector_app.py), and fuzzed
// against the same libraries running as a python3 co-process
// (FuzzDumps, FuzzLoads, FuzzSessionDecode, FuzzMatch):
//
//   - Routing (Map, Rule, Match, Map.Handler): Werkzeug's state-machine
//     matcher with Flask's defaults: converters string (with
//     minlength/maxlength/length), int, float, path, uuid, any; strict
//     slashes (308 to the slashed URL, never the other way); merged
//     repeated slashes (308); HEAD with GET; automatic OPTIONS answered with
//     an empty 200 and Allow; 405 with Allow over 404 when some rule matches
//     the path. Werkzeug's Allow order comes from a Python set and varies per
//     worker; compat always sorts (AllowOrder) and AllowEqual compares as sets.
//   - JSON: Marshal / JSONBody / WriteJSON give jsonify's bytes (sorted keys,
//     ASCII-only escapes, Python float repr, NaN/Infinity tokens, big ints,
//     trailing "\n"); Dumps with DumpOptions gives plain json.dumps (Python
//     defaults: insertion order of Object, ", " and ": "). Unmarshal is
//     json.loads(bytes): ints (int64 or *big.Int) kept apart from floats
//     (float64), objects as ordered Object, duplicate keys last-wins.
//   - Request bodies: GetJSON / GetJSONLimit / GetData: request.get_json()
//     with its 415, 400 and 413 outcomes as *HTTPError.
//   - Error pages: WriteError / ErrorPage / HTTPError: Werkzeug's HTML pages.
//   - Sessions: SessionCodec (itsdangerous URLSafeTimedSerializer with
//     Flask's TaggedJSONSerializer) and Session / SaveSession
//     (SecureCookieSessionInterface.save_session: Set-Cookie and Vary).
//
// Out of scope: the status reason phrase (Werkzeug sends "404 NOT FOUND";
// StatusLine gives it for a custom writer), Date, Server and connection
// framing; Flask debug mode (indented JSON, the decode error in 400 pages:
// see DebugDescription); ensure_ascii=False.
//
// Known differences, all deliberate and documented where they live:
//   - Go maps have no order: Dumps sorts their keys even without SortKeys
//     (use Object for insertion order).
//   - A handler that writes a body without Content-Length is framed by
//     net/http (chunked past 2 KiB) where Werkzeug would send a length;
//     WriteJSON and WriteError always set it. Map.Handler computes it for
//     HEAD.
//   - Recursion limits are CPython's as measured for a view under gunicorn
//     (MaxDecodeDepth 971, MaxEncodeDepth 970); a view calling get_json or
//     jsonify from deeper helpers has a few levels less in Python.
//   - Sessions: payloads whose dict() has non-string keys (only a holder of
//     the secret key can sign one) are ErrBadPayload; " d" tags parse only
//     the RFC 1123 dates Flask writes (werkzeug's parse_date accepts more);
//     compressed payloads inflate to at most 8 MiB. Flask opens the session
//     for every request, so a validly signed but undecodable cookie is a 500
//     on every route; a port that wants the same calls SessionCodec.Open
//     on every request. Without cgo, compressed cookies are valid but not
//     byte-identical (ZlibByteExact).
//   - net/http itself answers some requests before any handler runs (400
//     for an invalid Host or percent-escape in the path, which gunicorn
//     passes to Flask): that is the serving layer's concern, not compat's.
//
// # Porting an endpoint
//
// The Flask view
//
//	@app.route("/api/conversations/<conversation_id>", methods=["GET"])
//	def get_conversation(conversation_id):
//	    if not conversation_id.startswith("c"):
//	        abort(404)
//	    return jsonify({"id": conversation_id, "n": 1.0})
//
// becomes
//
//	m, err := compat.NewMap(
//		compat.Rule{Endpoint: "get_conversation", Pattern: "/api/conversations/<conversation_id>", Methods: []string{"GET"}},
//		// Flask always registers its static route too: keep it so 404/405 match.
//		compat.Rule{Endpoint: "static", Pattern: "/static/<path:filename>"},
//	)
//	if err != nil { ... }
//	h := m.Handler(map[string]http.Handler{
//		"get_conversation": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
//			id := compat.Param(r, "conversation_id")
//			if !strings.HasPrefix(id, "c") {
//				compat.WriteError(w, compat.Abort(404, ""))
//				return
//			}
//			compat.WriteJSON(w, http.StatusOK, map[string]any{"id": id, "n": 1.0})
//		}),
//		"static": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
//			compat.WriteError(w, compat.ErrNotFound) // the app has no static folder
//		}),
//	})
//
// which answers GET with {"id":"c1","n":1.0}\n, HEAD with the same headers
// and no body, OPTIONS with "Allow: GET, HEAD, OPTIONS", POST with the 405
// page, and /api/conversations/c1/ with the 404 page, as Flask does (the
// package Example runs exactly this). Request bodies: v, err :=
// compat.GetJSONLimit(r, maxContentLength); on error compat.WriteError(w, err).
// Sessions: s, err := codec.Open(r) before the view, codec.SaveSession(w, s)
// after it and before writing the body.
package compat
