package proxy

import (
	"net/http"
	"net/textproto"
	"strings"
)

// internalPrefix starts the name of every header cutover uses between its
// own parts (X-Cutover-Shadow marks shadow traffic, X-Cutover-Backend and
// X-Cutover-Token are the override's, X-Cutover-Served-By is the served-by
// default): a client may not send one on to a backend, or it could make a
// real request look like shadow traffic.
const internalPrefix = "X-Cutover-"

// stripInbound removes from a client's request, once the decision is made:
//   - every header named X-Cutover-*, and the names in also (the override
//     headers, whatever they are called);
//   - Upgrade and HTTP2-Settings, and those tokens in Connection: no route
//     of the Flask app needs a protocol upgrade, and a 101 from legacy (h2c,
//     WebSocket) would open a tunnel past routing and the framing checks.
func stripInbound(h http.Header, also ...string) {
	for name := range h {
		if strings.HasPrefix(name, internalPrefix) {
			delete(h, name)
		}
	}
	for _, name := range also {
		delete(h, name)
	}
	if _, ok := h["Upgrade"]; !ok && h["Http2-Settings"] == nil {
		return
	}
	delete(h, "Upgrade")
	delete(h, "Http2-Settings")
	conn, ok := h["Connection"]
	if !ok {
		return
	}
	var keep []string
	for _, v := range conn {
		for _, tok := range strings.Split(v, ",") {
			tok = textproto.TrimString(tok)
			if tok != "" && !strings.EqualFold(tok, "upgrade") && !strings.EqualFold(tok, "http2-settings") {
				keep = append(keep, tok)
			}
		}
	}
	if len(keep) == 0 {
		delete(h, "Connection")
		return
	}
	h["Connection"] = []string{strings.Join(keep, ", ")}
}
