package shadow

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// BenchmarkWrap measures what shadowing adds to the primary's path (the
// shadow itself runs on the pool): rate 0 is the plain handler behind Wrap.
//
//	go test -run '^$' -bench Wrap ./shadow/
func BenchmarkWrap(b *testing.B) {
	body := `{"message":"hello there","conversation_id":"abc"}`
	primary := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"reply":"hi","usage":{"input_tokens":3,"output_tokens":1}}`))
	})
	for _, rate := range []int{0, 10000} {
		b.Run(map[int]string{0: "rate=0", 10000: "rate=100%"}[rate], func(b *testing.B) {
			m, err := NewMirror(Options{Workers: 2, QueueSize: 256})
			if err != nil {
				b.Fatal(err)
			}
			defer m.Close(context.Background())
			h := m.Wrap(primary, func(*http.Request) (Plan, bool) {
				return Plan{Route: "chat", RateBP: rate, Target: HandlerTarget{Handler: primary}, ShadowSafe: true}, true
			})
			b.ReportAllocs()
			for b.Loop() {
				r := httptest.NewRequest("POST", "/api/chat", strings.NewReader(body))
				h.ServeHTTP(httptest.NewRecorder(), r)
			}
		})
	}
}
