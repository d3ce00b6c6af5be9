package lambdaemu_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/cairnlog/cairn/infra/lambdaemu"
	"github.com/cairnlog/cairn/infra/lambdaemu/lambdaemutest"
)

// TestIAMAuth checks the AWS_IAM Function URL: a request signed (SigV4,
// service lambda) with configured credentials passes and its caller
// reaches the event; unsigned, wrongly signed or altered ones get 403.
func TestIAMAuth(t *testing.T) {
	f := lambdaemutest.Start(t, lambdaemu.Config{Bootstrap: bootstraps.Path(t, "probe"), Region: "eu-west-1",
		Auth: &lambdaemu.IAMAuth{Region: "eu-west-1", Credentials: map[string]string{"AKIDTEST": "secret"}}})
	send := func(key, secret, region string, body, sent []byte) (int, string) {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), "POST", f.URL()+"/echo?q=1", bytes.NewReader(sent))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		if key != "" {
			sum := sha256.Sum256(body)
			creds := aws.Credentials{AccessKeyID: key, SecretAccessKey: secret}
			if err := v4.NewSigner().SignHTTP(context.Background(), creds, req, hex.EncodeToString(sum[:]), "lambda", region, time.Now()); err != nil {
				t.Fatal(err)
			}
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	body := []byte(`{"x":1}`)
	status, out := send("AKIDTEST", "secret", "eu-west-1", body, body)
	if status != 201 {
		t.Fatalf("signed request: %d %s", status, out)
	}
	var ev events.LambdaFunctionURLRequest
	if err := json.Unmarshal([]byte(out), &ev); err != nil {
		t.Fatal(err)
	}
	if a := ev.RequestContext.Authorizer; a == nil || a.IAM == nil || a.IAM.AccessKey != "AKIDTEST" || a.IAM.AccountID != lambdaemu.AccountID {
		t.Fatalf("authorizer %+v", a)
	}
	for _, tc := range []struct {
		name, key, secret, region string
		sent                      []byte
	}{
		{"unsigned", "", "", "", body},
		{"wrong secret", "AKIDTEST", "guess", "eu-west-1", body},
		{"unknown key", "AKIDOTHER", "secret", "eu-west-1", body},
		{"other region", "AKIDTEST", "secret", "us-east-1", body},
		{"body altered after signing", "AKIDTEST", "secret", "eu-west-1", []byte(`{"x":2}`)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, out := send(tc.key, tc.secret, tc.region, body, tc.sent)
			if status != 403 || out != `{"Message":"Forbidden"}` {
				t.Fatalf("%d %s, want 403 Forbidden", status, out)
			}
		})
	}
	if s := f.Stats(); s.Total.Invocations != 1 {
		t.Fatalf("refused requests reached the function: %+v", s.Total)
	}
}
