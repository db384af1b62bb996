package bedrockstub

import (
	"net/http"
	"strconv"
)

// exception is a Bedrock Runtime error shape with its HTTP status.
type exception struct {
	name   string // shape name, as in x-amzn-ErrorType
	status int
}

// Bedrock Runtime's exceptions used by the stub; the status codes are the service model's.
var (
	excValidation         = exception{"ValidationException", http.StatusBadRequest}
	excModelTimeout       = exception{"ModelTimeoutException", http.StatusRequestTimeout}
	excModelError         = exception{"ModelErrorException", http.StatusFailedDependency}
	excThrottling         = exception{"ThrottlingException", http.StatusTooManyRequests}
	excServiceUnavailable = exception{"ServiceUnavailableException", http.StatusServiceUnavailable}
	excUnknownOperation   = exception{"UnknownOperationException", http.StatusNotFound}
)

// errorTypeSuffix follows the shape name in x-amzn-ErrorType, as the service sends it.
const errorTypeSuffix = ":http://internal.amazon.com/coral/com.amazon.bedrock/"

// writeError answers with exc the way Bedrock does: the type in x-amzn-ErrorType (which both SDKs read
// before the body), a JSON body with the message.
func writeError(w http.ResponseWriter, exc exception, message string) {
	writeErrorFields(w, exc, message, nil)
}

// writeErrorFields is writeError with extra members of the exception shape in the body.
func writeErrorFields(w http.ResponseWriter, exc exception, message string, fields map[string]any) {
	body := map[string]any{"message": message}
	for k, v := range fields {
		body[k] = v
	}
	b := marshalCompact(body)
	h := w.Header()
	// Exact header spelling as the service sends it; net/http writes map keys as they are.
	h["x-amzn-ErrorType"] = []string{exc.name + errorTypeSuffix}
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(exc.status)
	_, _ = w.Write(b)
}
