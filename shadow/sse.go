package shadow

import (
	"bytes"
	"mime"
	"net/http"
	"strings"
)

// Event is one server-sent event: its name (empty means "message"), its data
// (data lines joined by "\n", per the SSE spec) and its id.
type Event struct {
	Name string `json:"event,omitempty"`
	Data string `json:"data"`
	ID   string `json:"id,omitempty"`
}

// IsEventStream reports whether h declares a text/event-stream body.
func IsEventStream(h http.Header) bool {
	mt, _, err := mime.ParseMediaType(h.Get("Content-Type"))
	return err == nil && mt == "text/event-stream"
}

// ParseEvents splits an SSE body into events following the WHATWG rules
// (CRLF, CR or LF line ends; comment lines ignored; an event is dispatched at
// a blank line). A last event without its blank line is still returned, so a
// cut stream shows up as a differing terminal event rather than vanishing.
func ParseEvents(body []byte) []Event {
	var (
		events  []Event
		cur     Event
		data    []string
		started bool
	)
	dispatch := func() {
		if started {
			cur.Data = strings.Join(data, "\n")
			events = append(events, cur)
		}
		cur, data, started = Event{}, nil, false
	}
	for len(body) > 0 {
		i := bytes.IndexAny(body, "\r\n")
		var line []byte
		if i < 0 {
			line, body = body, nil
		} else {
			line = body[:i]
			if body[i] == '\r' && i+1 < len(body) && body[i+1] == '\n' {
				i++
			}
			body = body[i+1:]
		}
		if len(line) == 0 {
			dispatch()
			continue
		}
		if line[0] == ':' {
			continue
		}
		field, value, _ := bytes.Cut(line, []byte(":"))
		value = bytes.TrimPrefix(value, []byte(" "))
		switch string(field) {
		case "event":
			cur.Name, started = string(value), true
		case "data":
			data, started = append(data, string(value)), true
		case "id":
			cur.ID, started = string(value), true
		}
	}
	dispatch()
	return events
}
