package bedrockstub_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"

	"github.com/cutover/cutover/internal/bedrockstub"
	"github.com/cutover/cutover/internal/testenv"
)

// isolatedAWSEnv is the environment with AWS configuration replaced by fixed test values, so neither a
// profile nor a bearer token of the machine reaches the SDK.
func isolatedAWSEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "AWS_") {
			continue
		}
		env = append(env, kv)
	}
	env = append(env,
		"AWS_ACCESS_KEY_ID=AKIDSTUB", "AWS_SECRET_ACCESS_KEY=stub-secret", "AWS_REGION=us-east-1",
		"AWS_EC2_METADATA_DISABLED=true", "AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null",
		"PYTHONIOENCODING=utf-8",
	)
	return append(env, extra...)
}

// TestBoto3 runs testdata/boto3_test.py (unittest) against a stub, then checks that boto3 and the Go SDK
// got byte-equal replies to semantically equal requests.
func TestBoto3(t *testing.T) {
	stub, base := newStub(t, bedrockstub.Options{})
	results := filepath.Join(t.TempDir(), "results.json")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "python3", filepath.Join("testdata", "boto3_test.py"))
	cmd.Env = isolatedAWSEnv("STUB_URL="+base, "STUB_RESULTS="+results)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("boto3 tests failed: %v\n%s", err, out)
	}
	t.Logf("boto3 tests:\n%s", out)
	// The hang requests boto3 gave up on must not leave handlers behind.
	waitIdle(t, stub)

	var py struct {
		InvokeBodyB64      string           `json:"invoke_body_b64"`
		StreamText         string           `json:"stream_text"`
		StreamEvents       []map[string]any `json:"stream_events"`
		ConverseText       string           `json:"converse_text"`
		ConverseStreamText string           `json:"converse_stream_text"`
	}
	b, err := os.ReadFile(results)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &py); err != nil {
		t.Fatal(err)
	}
	pyBody, err := base64.StdEncoding.DecodeString(py.InvokeBodyB64)
	if err != nil {
		t.Fatal(err)
	}

	// The same requests from Go: json.Marshal writes raw UTF-8, escapes <>&, and sorts keys.
	c := testenv.BedrockClient(t, base)
	text := "café <&> 🚀 \"q\"\nline"
	body, err := json.Marshal(map[string]any{
		"anthropic_version": "bedrock-2023-05-31", "max_tokens": 300, "temperature": 0.5,
		"messages": []any{map[string]any{"role": "user", "content": text}},
	})
	if err != nil {
		t.Fatal(err)
	}
	goOut, err := c.InvokeModel(context.Background(), &bedrockruntime.InvokeModelInput{ModelId: aws.String(modelID), Body: body})
	if err != nil {
		t.Fatal(err)
	}
	if string(goOut.Body) != string(pyBody) {
		t.Errorf("InvokeModel: boto3 got\n%s\nGo got\n%s", pyBody, goOut.Body)
	}
	r := invokeStream(context.Background(), c, modelID, body)
	if r.err != nil {
		t.Fatal(r.err)
	}
	if r.text != py.StreamText {
		t.Errorf("stream text: boto3 %q, Go %q", py.StreamText, r.text)
	}
	var goEvents, pyEvents any
	roundTrip(t, r.events, &goEvents)
	roundTrip(t, py.StreamEvents, &pyEvents)
	if !reflect.DeepEqual(goEvents, pyEvents) {
		t.Errorf("stream events differ:\nboto3 %v\nGo    %v", pyEvents, goEvents)
	}
	conv, err := c.Converse(context.Background(), converseInput(modelID, text, 300))
	if err != nil {
		t.Fatal(err)
	}
	if got := converseText(t, conv); got != py.ConverseText {
		t.Errorf("Converse: boto3 %q, Go %q", py.ConverseText, got)
	}
	cs := converseStream(context.Background(), c, converseInput(modelID, text, 300))
	if cs.err != nil || cs.text != py.ConverseStreamText {
		t.Errorf("ConverseStream: %v; boto3 %q, Go %q", cs.err, py.ConverseStreamText, cs.text)
	}
}

// roundTrip normalizes v through JSON into out, so values decoded by Go and by Python compare equal.
func roundTrip(t *testing.T, v any, out any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, out); err != nil {
		t.Fatal(err)
	}
}

// TestBoto3ServerFault runs testdata/boto3_test.py's ServerFault class against one stub per fault, each
// started with that fault for every request (Options.Fault, the binary's -fault flag).
func TestBoto3ServerFault(t *testing.T) {
	urls := map[string]string{}
	stubs := map[string]*bedrockstub.Server{}
	for _, f := range bedrockstub.Faults {
		if f == bedrockstub.FaultNone {
			continue
		}
		stubs[f], urls[f] = newStub(t, bedrockstub.Options{Fault: f})
	}
	if len(urls) < 6 {
		t.Fatalf("only %d faults: %v", len(urls), bedrockstub.Faults)
	}
	faults, err := json.Marshal(urls)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "python3", filepath.Join("testdata", "boto3_test.py"), "ServerFault")
	cmd.Env = isolatedAWSEnv("STUB_SERVER_FAULTS=" + string(faults))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("boto3 server-fault tests failed: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "Ran 3 tests") {
		t.Fatalf("boto3 server-fault tests did not all run:\n%s", out)
	}
	t.Logf("boto3 server-fault tests:\n%s", out)
	for f, stub := range stubs {
		t.Run(f, func(t *testing.T) { waitIdle(t, stub) })
	}
}
