// Package lambdaemutest is what tests that run Cairn's real bootstraps in
// infra/lambdaemu share:
//
//   - Bootstraps builds a set of function packages as Lambda runs them
//     (lambdaemu.Build), once per test binary, at the first test that asks
//     for one, into a directory TestMain removes;
//   - Start starts a lambdaemu.Function that the test's cleanup closes,
//     logging every environment's output if the test failed.
//
// Usage:
//
//	var bootstraps = lambdaemutest.NewBootstraps(".", "github.com/cairnlog/cairn/functions/node")
//
//	func TestMain(m *testing.M) {
//		code := miniotest.RunMain(m)
//		bootstraps.Remove()
//		os.Exit(code)
//	}
//
//	func TestNode(t *testing.T) {
//		f := lambdaemutest.Start(t, lambdaemu.Config{Name: "cairn-node", Bootstrap: bootstraps.Path(t, "node"), Env: env})
//		resp, err := http.Get(f.URL() + "/healthz")
//		...
//	}
//
// A Bootstraps is safe for concurrent use (parallel tests may share one).
// Path and Start fail the test they are given with t.Fatalf, so they must
// be called from the test's goroutine.
package lambdaemutest
