package testenv

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"

	"github.com/cutover/cutover/internal/bedrockhttp"
	"github.com/cutover/cutover/internal/bedrockstub"
)

// StartStub starts a Bedrock Runtime stub configured by opts on a free loopback port and returns its
// base URL (http://127.0.0.1:PORT). The stub stops when the test ends: requests still held by the hang
// fault or by modelled latency are released first, so cleanup never waits on them.
func StartStub(t testing.TB, opts bedrockstub.Options) (baseURL string) {
	t.Helper()
	stub := bedrockstub.New(opts)
	ts := httptest.NewServer(stub)
	t.Cleanup(func() {
		stub.Close()
		ts.Close()
	})
	return ts.URL
}

// BedrockClient returns an aws-sdk-go-v2 Bedrock Runtime client for the stub at baseURL: region
// us-east-1, static credentials, one attempt per call (no retries), SigV4 even when
// AWS_BEARER_TOKEN_BEDROCK is set, and the HTTP client built by bedrockhttp.Client, as production code
// builds it. Its own connection pool is closed when the test ends. Pass bedrockhttp.OwnEventStreamCodec
// to streaming calls that may overlap (see its comment).
func BedrockClient(t testing.TB, baseURL string) *bedrockruntime.Client {
	t.Helper()
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.MaxIdleConnsPerHost = 64
	httpClient := bedrockhttp.Client(&http.Client{Transport: transport})
	t.Cleanup(httpClient.CloseIdleConnections)
	return bedrockruntime.New(bedrockruntime.Options{
		Region:           "us-east-1",
		Credentials:      credentials.NewStaticCredentialsProvider("AKIDSTUB", "stub-secret", ""),
		BaseEndpoint:     aws.String(baseURL),
		RetryMaxAttempts: 1,
		HTTPClient:       httpClient,
	}, func(o *bedrockruntime.Options) {
		// New picks up AWS_BEARER_TOKEN_BEDROCK from the environment, and bearer auth refuses plain http.
		o.BearerAuthTokenProvider = nil
		o.AuthSchemePreference = nil
	})
}
