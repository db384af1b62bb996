package config

import (
	"strings"
	"testing"
)

func TestTracing(t *testing.T) {
	tests := []struct {
		give      string
		env       []string
		wantOn    bool
		wantRatio float64
		wantErr   string
	}{
		{give: "", wantOn: false, wantRatio: 1},
		{give: "tracing:\n  otlp_endpoint: http://127.0.0.1:4318\n", wantOn: true, wantRatio: 1},
		{give: "tracing:\n  otlp_endpoint: https://collector:4318/custom\n  sample_ratio: 0.25\n", wantOn: true, wantRatio: 0.25},
		{give: "tracing:\n  otlp_endpoint: http://c:4318\n  sample_ratio: 0\n", wantOn: true, wantRatio: 0},
		{env: []string{"CUTOVER_TRACING_OTLP_ENDPOINT=http://127.0.0.1:4318", "CUTOVER_TRACING_SAMPLE_RATIO=0.5"}, wantOn: true, wantRatio: 0.5},
		{give: "tracing:\n  otlp_endpoint: 127.0.0.1:4318\n", wantErr: `tracing: otlp_endpoint "127.0.0.1:4318" is not an http(s) URL`},
		{give: "tracing:\n  otlp_endpoint: grpc://c:4317\n", wantErr: `tracing: otlp_endpoint "grpc://c:4317" is not an http(s) URL`},
		{give: "tracing:\n  sample_ratio: 1.5\n", wantErr: "tracing: sample_ratio 1.5 is not in [0, 1]"},
		{give: "tracing:\n  sample_ratio: -0.1\n", wantErr: "tracing: sample_ratio -0.1 is not in [0, 1]"},
		{give: "tracing:\n  otlp_endpoint: http://c:4318\n  sampling: 1\n", wantErr: "sampling"},
	}
	for _, tt := range tests {
		c, err := Parse([]byte(tt.give), tt.env)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%q %v: error %v, want %q", tt.give, tt.env, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q %v: %v", tt.give, tt.env, err)
			continue
		}
		if c.Tracing.Enabled() != tt.wantOn || c.Tracing.Ratio() != tt.wantRatio {
			t.Errorf("%q %v: on %v ratio %v, want %v %v", tt.give, tt.env, c.Tracing.Enabled(), c.Tracing.Ratio(), tt.wantOn, tt.wantRatio)
		}
	}
}
