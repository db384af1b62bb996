package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/types"
	"go.uber.org/goleak"

	"github.com/cutover/cutover/internal/bedrockstub"
	"github.com/cutover/cutover/internal/testenv"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

var listening = regexp.MustCompile(`^bedrock-stub listening on (127\.0\.0\.1:[0-9]+)\n$`)

// TestServe serves, answers through the SDK, then shuts down on cancel with a hung request open.
func TestServe(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	stub := bedrockstub.New(bedrockstub.Options{Fault: "throttle"})
	var stdout lockedBuffer
	done := make(chan error, 1)
	go func() { done <- serve(ctx, ln, stub, &stdout) }()

	c := testenv.BedrockClient(t, "http://"+ln.Addr().String())
	body := []byte(`{"anthropic_version":"bedrock-2023-05-31","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}`)
	_, err = c.InvokeModel(ctx, &bedrockruntime.InvokeModelInput{ModelId: aws.String("m"), Body: body})
	var throttled *types.ThrottlingException
	if !errors.As(err, &throttled) {
		t.Errorf("InvokeModel with Fault throttle: %v", err)
	}
	if got, want := stdout.String(), "bedrock-stub listening on "+ln.Addr().String()+"\n"; got != want {
		t.Errorf("stdout %q, want %q", got, want)
	}

	hung := make(chan error, 1)
	go func() {
		_, err := c.InvokeModel(context.Background(), &bedrockruntime.InvokeModelInput{
			ModelId: aws.String("m"), Body: bytes.ReplaceAll(body, []byte("hi"), []byte("[[stub-fault:hang]]")),
		})
		hung <- err
	}()
	for deadline := time.Now().Add(10 * time.Second); stub.InFlight() != 1; {
		if time.Now().After(deadline) {
			t.Fatal("the hang request never reached the stub")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("serve: %v", err)
	}
	if err := <-hung; err == nil {
		t.Error("the hung request got an answer, want the connection dropped at shutdown")
	}
}

// TestRun starts the command as main does and reads its announcement.
func TestRun(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stdoutR, stdoutW := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-addr", "127.0.0.1:0", "-ttft", "0", "-tps", "0"}, stdoutW, io.Discard)
		stdoutW.Close()
	}()
	line, err := bufio.NewReader(stdoutR).ReadString('\n')
	if err != nil {
		t.Fatalf("reading the listening line: %v", err)
	}
	m := listening.FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("stdout %q, want %q", line, "bedrock-stub listening on 127.0.0.1:PORT\n")
	}
	c := testenv.BedrockClient(t, "http://"+m[1])
	body := []byte(`{"anthropic_version":"bedrock-2023-05-31","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}`)
	if _, err := c.InvokeModel(ctx, &bedrockruntime.InvokeModelInput{ModelId: aws.String("m"), Body: body}); err != nil {
		t.Errorf("InvokeModel: %v", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("run: %v", err)
	}
}

// lockedBuffer is a bytes.Buffer safe for one writer and one reader goroutine.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestRunRejectsBadFlags(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"unknown fault", []string{"-fault", "boom"}, `fault "boom"`},
		{"negative tps", []string{"-tps", "-1"}, "tokens per second"},
		{"negative ttft", []string{"-ttft", "-1s"}, "ttft"},
		{"extra argument", []string{"serve"}, "unexpected arguments"},
		{"unknown flag", []string{"-port", "1"}, "flag provided but not defined"},
		{"bad address", []string{"-addr", "127.0.0.1:99999"}, "99999"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout bytes.Buffer
			err := run(context.Background(), tt.args, &stdout, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("run(%q) = %v, want an error containing %q", tt.args, err, tt.want)
			}
			if stdout.Len() != 0 {
				t.Errorf("stdout %q, want nothing", stdout.String())
			}
		})
	}
}
