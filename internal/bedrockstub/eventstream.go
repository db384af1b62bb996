package bedrockstub

import (
	"net/http"
	"sync/atomic"

	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream"
)

// eventWriter writes application/vnd.amazon.eventstream frames to a response, flushing each one so the
// client sees events as they are produced. Not safe for concurrent use.
type eventWriter struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	enc     *eventstream.Encoder
	started bool
	frames  *atomic.Int64 // counts frames written
}

func newEventWriter(w http.ResponseWriter, frames *atomic.Int64) *eventWriter {
	return &eventWriter{w: w, rc: http.NewResponseController(w), enc: eventstream.NewEncoder(), frames: frames}
}

// event sends an event frame of the given type with a JSON payload.
func (e *eventWriter) event(eventType string, payload []byte) error {
	return e.frame(eventstream.Headers{
		{Name: ":event-type", Value: eventstream.StringValue(eventType)},
		{Name: ":content-type", Value: eventstream.StringValue("application/json")},
		{Name: ":message-type", Value: eventstream.StringValue("event")},
	}, payload)
}

// exception sends an in-stream exception frame; excType is the lowerCamel member name of the stream
// union (modelStreamErrorException), which both SDKs map to their typed error.
func (e *eventWriter) exception(excType string, payload []byte) error {
	return e.frame(eventstream.Headers{
		{Name: ":exception-type", Value: eventstream.StringValue(excType)},
		{Name: ":content-type", Value: eventstream.StringValue("application/json")},
		{Name: ":message-type", Value: eventstream.StringValue("exception")},
	}, payload)
}

func (e *eventWriter) frame(headers eventstream.Headers, payload []byte) error {
	if !e.started {
		e.started = true
		e.w.Header().Set("Content-Type", "application/vnd.amazon.eventstream")
		e.w.WriteHeader(http.StatusOK)
	}
	if err := e.enc.Encode(e.w, eventstream.Message{Headers: headers, Payload: payload}); err != nil {
		return err
	}
	e.frames.Add(1)
	return e.rc.Flush()
}
