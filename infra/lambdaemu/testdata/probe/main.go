// Command probe is the Lambda function lambdaemu's tests drive: a Function
// URL handler (buffered or streamed answers, errors, sleeps, crashes) whose
// init and extensions are set by PROBE_* variables, and, run under a name
// starting with "ext-", an external extension.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"
)

var invocations atomic.Int64

func main() {
	api := "http://" + os.Getenv("AWS_LAMBDA_RUNTIME_API")
	if name := filepath.Base(os.Args[0]); strings.HasPrefix(name, "ext-") {
		loop(api, name, register(api, name, []string{"INVOKE", "SHUTDOWN"}))
		return
	}
	switch os.Getenv("PROBE_INIT") {
	case "exit":
		fmt.Println("probe: exiting during init")
		os.Exit(3)
	case "error":
		_, _ = http.Post(api+"/2018-06-01/runtime/init/error", "application/json",
			strings.NewReader(`{"errorMessage":"probe cannot start","errorType":"Probe.InitError"}`))
		os.Exit(4)
	case "hang":
		time.Sleep(time.Hour)
	}
	if os.Getenv("PROBE_EXTENSION") == "invoke" {
		// An internal extension registers before the runtime asks for its
		// first event, which ends the init phase.
		id := register(api, "probe-internal", []string{"INVOKE"})
		go loop(api, "probe-internal", id)
	}
	if os.Getenv("PROBE_NO_SIGTERM") != "" {
		lambda.Start(handle)
	}
	lambda.StartWithOptions(handle, lambda.WithEnableSIGTERM(func() { fmt.Println("probe: SIGTERM") }))
}

// handle answers by path: /echo returns the event, /stream streams, /error
// fails, /sleep?d= sleeps, /exit exits, /cut streams then fails part-way, /block?file=
// waits until the file exists.
func handle(ctx context.Context, req events.LambdaFunctionURLRequest) (any, error) {
	n := invocations.Add(1)
	fmt.Printf("probe: invocation %d %s\n", n, req.RawPath)
	who := map[string]string{"X-Pid": fmt.Sprint(os.Getpid()), "X-Invocation": fmt.Sprint(n)}
	switch req.RawPath {
	case "/echo":
		b, _ := json.Marshal(req)
		return events.LambdaFunctionURLResponse{StatusCode: 201, Headers: who, Body: string(b), Cookies: []string{"a=1"}}, nil
	case "/raw":
		return map[string]int{"n": int(n)}, nil
	case "/stream":
		who["Content-Type"] = "text/plain"
		return &events.LambdaFunctionURLStreamingResponse{StatusCode: 202, Headers: who, Body: strings.NewReader("streamed body\n")}, nil
	case "/cut":
		return &events.LambdaFunctionURLStreamingResponse{StatusCode: 200, Headers: who,
			Body: io.MultiReader(strings.NewReader("partial"), errReader{})}, nil
	case "/error":
		return nil, errors.New("probe failed on purpose")
	case "/sleep":
		d, _ := time.ParseDuration(req.QueryStringParameters["d"])
		time.Sleep(d)
		return events.LambdaFunctionURLResponse{StatusCode: 200, Headers: who, Body: "slept"}, nil
	case "/exit":
		os.Exit(5)
	case "/block":
		for {
			if _, err := os.Stat(req.QueryStringParameters["file"]); err == nil {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	return events.LambdaFunctionURLResponse{StatusCode: 200, Headers: who, Body: "ok"}, nil
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("probe stream broke") }

// register registers extension name for events and returns its ID.
func register(api, name string, evs []string) string {
	body, _ := json.Marshal(map[string][]string{"events": evs})
	req, _ := http.NewRequest("POST", api+"/2020-01-01/extension/register", bytes.NewReader(body))
	req.Header.Set("Lambda-Extension-Name", name)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Println("ext:", err)
		os.Exit(1)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		fmt.Println("ext: register:", resp.Status)
		os.Exit(1)
	}
	return resp.Header.Get("Lambda-Extension-Identifier")
}

// loop logs each event the extension gets; it exits after SHUTDOWN.
func loop(api, name, id string) {
	for {
		req, _ := http.NewRequest("GET", api+"/2020-01-01/extension/event/next", nil)
		req.Header.Set("Lambda-Extension-Identifier", id)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			fmt.Println("ext:", err)
			os.Exit(1)
		}
		var ev struct {
			EventType string `json:"eventType"`
			RequestID string `json:"requestId"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&ev)
		resp.Body.Close()
		fmt.Printf("%s: %s %s\n", name, ev.EventType, ev.RequestID)
		if ev.EventType == "SHUTDOWN" {
			fmt.Printf("%s: exiting\n", name)
			os.Exit(0)
		}
		if d, err := time.ParseDuration(os.Getenv("PROBE_EXTENSION_DELAY")); err == nil {
			time.Sleep(d)
			fmt.Printf("%s: done with %s\n", name, ev.RequestID)
		}
		if dir := os.Getenv("PROBE_EXTENSION_MARKS"); dir != "" {
			_ = os.WriteFile(filepath.Join(dir, ev.RequestID), nil, 0o644)
		}
	}
}
