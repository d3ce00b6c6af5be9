// Package lambdaemu emulates AWS Lambda's execution model around the real
// bootstrap binaries of Cairn's functions, so that tests (and later
// `cairn bench`) can measure the serverless design: cold starts, frozen
// environments, reaping, throttling and timeouts. The AWS Runtime Interface
// Emulator runs one environment and never freezes it; this one runs a
// function's fleet.
//
// # Model
//
// A Function (Start) is a set of execution environments behind one
// Function URL (URL, or Function as an http.Handler). An environment (Env)
// is a bootstrap process, plus the external extensions of
// Config.Extensions, in a process group of its own, with its own Runtime
// API and Extensions API on a loopback port (AWS_LAMBDA_RUNTIME_API) and
// the variables Lambda sets (AWS_LAMBDA_FUNCTION_NAME, _MEMORY_SIZE,
// _LOG_STREAM_NAME, _HANDLER, AWS_REGION, ...) under Config.Env.
//
//   - Routing: a request goes to an idle environment the Policy picks
//     (MostRecent, Random with a seed, RoundRobin), or, if none is idle and
//     fewer than Config.ReservedConcurrency are alive, to a new one (a cold
//     start, its init phase counted). An environment runs one invocation at
//     a time, never more. With every environment busy the request is
//     throttled: 429 {"Message":"Rate Exceeded."}.
//   - Init: from process start until the runtime and every registered
//     extension asked for their next event (Config.InitTimeout). A runtime
//     that posts init/error, exits, or overruns fails the request (502) and
//     the environment is destroyed.
//   - Freeze: once the runtime answered and asked for the next event and
//     every extension asked for its next event (aws-lambda-go's internal
//     SIGTERM extension asks once and never gets one), the group gets
//     SIGSTOP; a request routed to it sends SIGCONT. Nothing in a frozen
//     environment runs; the Frozen hook runs once every process is stopped.
//   - Timeout: an invocation, with its extensions' post-invoke work, running
//     past Config.Timeout destroys its environment (SIGKILL); the client
//     gets 502.
//   - Errors: .../error, and a streamed response with the
//     Lambda-Runtime-Function-Error-Type trailer, answer 502
//     {"Message":"Internal Server Error"} (a stream already under way is
//     cut instead); the environment stays warm. A runtime that exits kills
//     its environment (a crash).
//   - Reaping: an environment idle for Config.IdleTimeout is taken away by
//     Config.Reap: ReapShutdown runs the Shutdown phase (SIGKILL at once
//     when no extension registered; otherwise SIGTERM to the runtime,
//     SHUTDOWN to subscribed external extensions, SIGKILL after 500 ms with
//     internal extensions only or 2 s with an external one, unless every
//     process exited) and ReapKill sends SIGKILL without warning.
//   - Test hooks: Env.Reap, Env.Kill and Env.FreezeForever ("freeze after
//     this invocation and never thaw") act on demand, also from a hook (say,
//     Kill inside Hooks.Invoked); Env.Freeze and Env.Thaw stop and continue
//     an environment at any moment (with Config.NoFreeze a test freezes by
//     hand); Hooks.Event may alter an event before it is sent.
//   - Stats counts invocations, cold starts and init time, freezes, thaws,
//     reaps (graceful and killed), timeouts, throttles, init and function
//     errors and crashes, per environment and in total.
//
// # Function URL
//
// A request becomes an events.LambdaFunctionURLRequest (payload format
// 2.0: lower-case headers with repeated ones joined by commas, cookies
// apart, text bodies as text and any other body base64-encoded, at most
// MaxRequestBytes). The answer is read while the runtime posts it: a
// response of Content-Type application/vnd.awslambda.http-integration-response
// (what lambdaurl sends) is a JSON prelude, eight NUL bytes and the body,
// streamed to the client as it arrives; any other is buffered, a
// LambdaFunctionURLResponse or else a JSON value served as a 200
// application/json body. Every answer carries X-Amzn-Requestid (the event's
// request ID) and, from an environment, X-Lambdaemu-Env (its ID; not an
// AWS header). With Config.Auth the URL is AWS_IAM: a request must carry a
// SigV4 signature (service "lambda") by one of IAMAuth.Credentials, else
// 403 {"Message":"Forbidden"}.
//
// Lambda documents the 429, 502 and 403 statuses; the bodies are those
// Function URLs are observed to send.
//
// # Concurrency
//
// Function and Env are safe for concurrent use. Hooks run on the
// emulator's goroutines with no lock held, one call per event, and may
// call any method but Function.Close. Close kills every environment and
// waits for their processes. It needs Unix process groups; on Linux
// (what the tests run on) an environment also dies with the emulator, and a
// freeze waits until /proc shows every process stopped.
//
// # Example
//
//	bins, err := lambdaemu.Build(ctx, ".", dir, "github.com/cairnlog/cairn/functions/node")
//	f, err := lambdaemu.Start(lambdaemu.Config{
//		Name: "cairn-node", Bootstrap: bins[0], Env: vars,
//		Timeout: 30 * time.Second, ReservedConcurrency: 2, Policy: lambdaemu.RoundRobin(),
//	})
//	defer f.Close()
//	resp, err := http.Post(f.URL()+"/v1/pchannels/p0/append", "application/json", body)
//	fmt.Println(f.Stats().Total.ColdStarts)
//
// Tests build and start bootstraps with lambdaemutest (Bootstraps, built
// once per test binary; Start, closed at the test's cleanup).
package lambdaemu
