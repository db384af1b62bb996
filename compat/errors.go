package compat

import (
	"errors"
	"fmt"
	"html"
	"net/http"
	"strconv"
	"strings"
)

// statusNames is Werkzeug 3.1's HTTP_STATUS_CODES (werkzeug/http.py). The
// HTML error page title uses these title-case names, while the status line
// sent by the WSGI servers uses them upper-cased (see StatusLine).
var statusNames = map[int]string{
	100: "Continue", 101: "Switching Protocols", 102: "Processing", 103: "Early Hints",
	200: "OK", 201: "Created", 202: "Accepted", 203: "Non Authoritative Information",
	204: "No Content", 205: "Reset Content", 206: "Partial Content", 207: "Multi Status",
	208: "Already Reported", 226: "IM Used",
	300: "Multiple Choices", 301: "Moved Permanently", 302: "Found", 303: "See Other",
	304: "Not Modified", 305: "Use Proxy", 306: "Switch Proxy", 307: "Temporary Redirect",
	308: "Permanent Redirect",
	400: "Bad Request", 401: "Unauthorized", 402: "Payment Required", 403: "Forbidden",
	404: "Not Found", 405: "Method Not Allowed", 406: "Not Acceptable",
	407: "Proxy Authentication Required", 408: "Request Timeout", 409: "Conflict", 410: "Gone",
	411: "Length Required", 412: "Precondition Failed", 413: "Request Entity Too Large",
	414: "Request URI Too Long", 415: "Unsupported Media Type",
	416: "Requested Range Not Satisfiable", 417: "Expectation Failed", 418: "I'm a teapot",
	421: "Misdirected Request", 422: "Unprocessable Entity", 423: "Locked",
	424: "Failed Dependency", 425: "Too Early", 426: "Upgrade Required",
	428: "Precondition Required", 429: "Too Many Requests",
	431: "Request Header Fields Too Large", 449: "Retry With",
	451: "Unavailable For Legal Reasons",
	500: "Internal Server Error", 501: "Not Implemented", 502: "Bad Gateway",
	503: "Service Unavailable", 504: "Gateway Timeout", 505: "HTTP Version Not Supported",
	506: "Variant Also Negotiates", 507: "Insufficient Storage", 508: "Loop Detected",
	510: "Not Extended", 511: "Network Authentication Failed",
}

// defaultDescriptions are the `description` class attributes of
// werkzeug.exceptions (3.1). Codes without an exception class have none.
var defaultDescriptions = map[int]string{
	400: "The browser (or proxy) sent a request that this server could not understand.",
	401: "The server could not verify that you are authorized to access the URL requested. You either supplied the wrong credentials (e.g. a bad password), or your browser doesn't understand how to supply the credentials required.",
	403: "You don't have the permission to access the requested resource. It is either read-protected or not readable by the server.",
	404: "The requested URL was not found on the server. If you entered the URL manually please check your spelling and try again.",
	405: "The method is not allowed for the requested URL.",
	406: "The resource identified by the request is only capable of generating response entities which have content characteristics not acceptable according to the accept headers sent in the request.",
	408: "The server closed the network connection because the browser didn't finish the request within the specified time.",
	409: "A conflict happened while processing the request. The resource might have been modified while the request was being processed.",
	410: "The requested URL is no longer available on this server and there is no forwarding address. If you followed a link from a foreign page, please contact the author of this page.",
	411: "A request with this method requires a valid <code>Content-Length</code> header.",
	412: "The precondition on the request for the URL failed positive evaluation.",
	413: "The data value transmitted exceeds the capacity limit.",
	414: "The length of the requested URL exceeds the capacity limit for this server. The request cannot be processed.",
	415: "The server does not support the media type transmitted in the request.",
	416: "The server cannot provide the requested range.",
	417: "The server could not meet the requirements of the Expect header",
	418: "This server is a teapot, not a coffee machine",
	421: "The server is not able to produce a response.",
	422: "The request was well-formed but was unable to be followed due to semantic errors.",
	423: "The resource that is being accessed is locked.",
	424: "The method could not be performed on the resource because the requested action depended on another action and that action failed.",
	428: `This request is required to be conditional; try using "If-Match" or "If-Unmodified-Since".`,
	429: "This user has exceeded an allotted request count. Try again later.",
	431: "One or more header fields exceeds the maximum size.",
	451: "Unavailable for legal reasons.",
	500: "The server encountered an internal error and was unable to complete your request. Either the server is overloaded or there is an error in the application.",
	501: "The server does not support the action requested by the browser.",
	502: "The proxy server received an invalid response from an upstream server.",
	503: "The server is temporarily unable to service your request due to maintenance downtime or capacity problems. Please try again later.",
	504: "The connection to an upstream server timed out.",
	505: "The server does not support the HTTP protocol version used in the request.",
}

// StatusName is Werkzeug's name for code ("Not Found"), "Unknown Error" for
// codes Werkzeug does not know (HTTPException.name).
func StatusName(code int) string {
	if n, ok := statusNames[code]; ok {
		return n
	}
	return "Unknown Error"
}

// StatusLine is the status string Werkzeug hands to the WSGI server, which
// both the dev server and gunicorn put on the wire as is: "404 NOT FOUND",
// "418 I'M A TEAPOT", "299 UNKNOWN". Go's net/http cannot send it; a custom
// HTTP/1.1 writer can.
func StatusLine(code int) string {
	n, ok := statusNames[code]
	if !ok {
		n = "unknown"
	}
	return strconv.Itoa(code) + " " + strings.ToUpper(n)
}

// DefaultDescription is the description Werkzeug's exception class for code
// renders when none is given ("" if Werkzeug has no class for code).
func DefaultDescription(code int) string { return defaultDescriptions[code] }

// HTTPError is a werkzeug.exceptions.HTTPException: a status code, a
// description rendered into Werkzeug's HTML page, and extra headers.
type HTTPError struct {
	// Code is the HTTP status code. Zero means 500.
	Code int
	// Description is the text of the page's <p>, escaped when rendered.
	// Empty means Werkzeug's default description for Code.
	Description string
	// Header holds extra response headers (Allow for 405, Retry-After...). Nil means none.
	Header http.Header
	// Err is the cause; it is never rendered.
	Err error
}

func (e *HTTPError) code() int {
	if e.Code == 0 {
		return http.StatusInternalServerError
	}
	return e.Code
}

func (e *HTTPError) description() string {
	if e.Description == "" {
		return DefaultDescription(e.code())
	}
	return e.Description
}

// Error implements error as Werkzeug's str(exc): "404 Not Found: description".
func (e *HTTPError) Error() string {
	s := fmt.Sprintf("%d %s: %s", e.code(), StatusName(e.code()), e.description())
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns the cause.
func (e *HTTPError) Unwrap() error { return e.Err }

// Body renders HTTPException.get_body: markupsafe-escaped name and
// description, "\n" in the description becoming "<br>".
func (e *HTTPError) Body() []byte {
	return ErrorPage(e.code(), e.description())
}

// ErrorPage renders Werkzeug's default HTML error page for code with the
// given (unescaped) description, byte for byte.
func ErrorPage(code int, description string) []byte {
	name := html.EscapeString(StatusName(code))
	desc := strings.ReplaceAll(html.EscapeString(description), "\n", "<br>")
	var b strings.Builder
	b.Grow(80 + 2*len(name) + len(desc))
	b.WriteString("<!doctype html>\n<html lang=en>\n<title>")
	b.WriteString(strconv.Itoa(code))
	b.WriteByte(' ')
	b.WriteString(name)
	b.WriteString("</title>\n<h1>")
	b.WriteString(name)
	b.WriteString("</h1>\n<p>")
	b.WriteString(desc)
	b.WriteString("</p>\n")
	return []byte(b.String())
}

// RedirectPage renders werkzeug.utils.redirect's HTML body for location.
func RedirectPage(location string) []byte {
	l := html.EscapeString(location)
	return []byte("<!doctype html>\n<html lang=en>\n<title>Redirecting...</title>\n" +
		"<h1>Redirecting...</h1>\n<p>You should be redirected automatically to the target URL: " +
		`<a href="` + l + `">` + l + "</a>. If not, click the link.\n")
}

// ErrorResponse converts err into the status, headers and body Flask would
// send for it without an error handler: *HTTPError as is,
// *MethodNotAllowedError as 405 with Allow, *RedirectError as the 308 page,
// ErrNotFound as 404, and anything else as 500.
func ErrorResponse(err error) (code int, header http.Header, body []byte) {
	header = http.Header{}
	header.Set("Content-Type", "text/html; charset=utf-8")
	var (
		he  *HTTPError
		mna *MethodNotAllowedError
		re  *RedirectError
	)
	switch {
	case errors.As(err, &re):
		body = RedirectPage(re.Location)
		header.Set("Location", re.Location)
		code = re.Code()
	case errors.As(err, &mna):
		code = http.StatusMethodNotAllowed
		header.Set("Allow", AllowHeader(mna.Allowed))
		body = ErrorPage(code, DefaultDescription(code))
	case errors.As(err, &he):
		code = he.code()
		for k, vs := range he.Header {
			header[k] = append([]string(nil), vs...)
		}
		body = he.Body()
	case errors.Is(err, ErrNotFound):
		code = http.StatusNotFound
		body = ErrorPage(code, DefaultDescription(code))
	default:
		code = http.StatusInternalServerError
		body = ErrorPage(code, DefaultDescription(code))
	}
	header.Set("Content-Length", strconv.Itoa(len(body)))
	return code, header, body
}

// WriteError writes err as Flask would without an error handler (see
// ErrorResponse): Content-Type "text/html; charset=utf-8", Content-Length,
// and the Werkzeug HTML page (no body for HEAD requests is the server's job;
// the Map handler discards it).
func WriteError(w http.ResponseWriter, err error) {
	code, header, body := ErrorResponse(err)
	h := w.Header()
	for k, vs := range header {
		h[k] = vs
	}
	w.WriteHeader(code)
	_, _ = w.Write(body)
}

// Abort builds the error flask.abort(code, description) raises; an empty
// description means Werkzeug's default.
func Abort(code int, description string) *HTTPError {
	return &HTTPError{Code: code, Description: description}
}
