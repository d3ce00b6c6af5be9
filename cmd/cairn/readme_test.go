package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// tourChecks says what each command of README.md's five-minute tour must
// print, by its exact line. A tour line without a check fails the test, so
// the tour and this table change together.
var tourChecks = map[string]func(stdout, stderr string) error{
	`printf 'hello\nworld\n' | cairn produce --pchannel p0 --vchannel v0`: func(out, errOut string) error {
		return all(
			// A new pchannel's offsets 0-7 hold its writer's fence and
			// fillers (README.md says so where the tour prints id:8.0).
			match(out, `^id:8\.0 timetick:\d+\nid:8\.1 timetick:\d+\n$`),
			match(errOut, `^produced 2 of 2 messages to p0 \(producer go-.+, epoch \d+\)\n$`))
	},
	`cairn consume --pchannel p0`: func(out, errOut string) error {
		return all(
			match(out, `^id:\d+\.0 v0 hello\nid:\d+\.1 v0 world\n$`),
			match(errOut, `^consumed 2 messages from p0; resume with --from id:\d+\.2\n$`))
	},
	`cairn consume --pchannel p0 --max 1 --output json`: func(out, _ string) error {
		var m struct {
			Position string `json:"position"`
			Payload  []byte `json:"payload"`
		}
		if err := json.Unmarshal([]byte(out), &m); err != nil || string(m.Payload) != "hello" || !strings.HasPrefix(m.Position, "id:") {
			return fmt.Errorf("want one JSON message with payload hello (%v)", err)
		}
		return nil
	},
	// serve's node takes p0…p3 within seconds of starting: the rows of p1…p3
	// may or may not be there yet.
	`cairn pchannel list`: func(out, _ string) error {
		return match(out, `^PCHANNEL +HOLDER +TERM +LIVE +TAIL +CHECKPOINT +EXPIRES\np0 +serve-\S+ +1 +yes +\d+ +\d+ +\S+\n(p[123] +serve-\S+ +1 +yes +\d+ +0 +\S+\n)*$`)
	},
	`cairn lease describe p0`: func(out, _ string) error {
		return all(match(out, `(?m)^pchannel +p0$`), match(out, `(?m)^live +yes$`), match(out, `(?m)^term +1$`))
	},
	`cairn status --output json`: func(out, _ string) error {
		var st struct {
			PChannels []struct {
				PChannel string `json:"pchannel"`
				Live     bool   `json:"live"`
			} `json:"pchannels"`
		}
		if err := json.Unmarshal([]byte(out), &st); err != nil || len(st.PChannels) == 0 || st.PChannels[0].PChannel != "p0" || !st.PChannels[0].Live {
			return fmt.Errorf("want the status of p0 first, live (%v)", err)
		}
		return nil
	},
	`cairn vchannel create orders --pchannel p1`: func(out, _ string) error {
		return all(match(out, `(?m)^vchannel +orders$`), match(out, `(?m)^pchannel +p1$`), match(out, `(?m)^state +active$`))
	},
	`printf 'order 1\norder 2\n' | cairn produce --vchannel orders`: func(out, errOut string) error {
		return all(
			match(out, `^id:\d+\.\d+ timetick:\d+\nid:\d+\.\d+ timetick:\d+\n$`),
			match(errOut, `^produced 2 of 2 messages to vchannel orders \(producer go-.+, epoch \d+\)\n$`))
	},
	`cairn consume --vchannel orders`: func(out, errOut string) error {
		return all(
			match(out, `^id:\d+\.0 orders order 1\nid:\d+\.1 orders order 2\n$`),
			match(errOut, `^consumed 2 messages from vchannel orders; resume with --from id:\d+\.2\n$`))
	},
	`cairn snapshot create nightly --vchannel orders`: func(out, _ string) error {
		return all(match(out, `(?m)^snapshot +nightly$`), match(out, `(?m)^state +committed$`), match(out, `(?m)^vchannels +orders$`),
			match(out, `(?m)^messages +3 \(control messages included: each vchannel's create message\)$`))
	},
	`cairn snapshot restore nightly --target orders=orders-restored`: func(out, _ string) error {
		// Standard output is no terminal here: progress lines, then the job.
		return all(match(out, `(?m)^restore \S+: done (\d+)/\d+$`), match(out, `(?m)^state +done$`),
			match(out, `(?m)^targets +orders=orders-restored$`))
	},
	`cairn consume --vchannel orders-restored`: func(out, errOut string) error {
		return all(
			match(out, `^restored:\d+\.0 orders-restored order 1\nrestored:\d+\.1 orders-restored order 2\n$`),
			match(errOut, `^consumed 2 messages from vchannel orders-restored; resume with --from id:\d+\.\d+ \(where its own messages start, after the restored history\)\n$`))
	},
	`cairn broadcast send --id ddl-1 --vchannel orders --vchannel orders-restored --payload 'create index'`: func(out, _ string) error {
		return all(match(out, `(?m)^broadcast +ddl-1$`), match(out, `(?m)^state +done$`),
			match(out, `(?m)^target +orders p1 id:\d+\.\d+$`), match(out, `(?m)^target +orders-restored p\d id:\d+\.\d+$`))
	},
	`cairn consume --vchannel orders --type broadcast`: func(out, errOut string) error {
		return all(
			match(out, `^id:\d+\.\d+ orders create index\n$`),
			match(errOut, `^consumed 1 messages from vchannel orders; resume with --from id:\d+\.\d+\n$`))
	},
}

func match(s, re string) error {
	if !regexp.MustCompile(re).MatchString(s) {
		return fmt.Errorf("does not match %s", re)
	}
	return nil
}

func all(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// TestReadmeTour runs README.md's five-minute tour: a freshly built cairn
// serves on a free port (the tour's `cairn serve`, with --addr and
// --data-dir for the test), and every line of the tour's second block runs
// verbatim through sh, with that cairn first on PATH and CAIRN_SERVER set
// to the server — the only change.
func TestReadmeTour(t *testing.T) {
	serve, commands := readmeTour(t)
	if !hasCommand(serve, "cairn serve") {
		t.Fatalf("the tour's first block does not run `cairn serve`:\n%s", serve)
	}
	dir := t.TempDir()
	bin := tourCairn(t)
	env := append(os.Environ(), "PATH="+filepath.Dir(bin)+string(os.PathListSeparator)+os.Getenv("PATH"), "CAIRN_TOKEN=")
	server := startServeChild(t, bin, filepath.Join(dir, "data"), env)
	env = append(env, "CAIRN_SERVER="+server)
	runTour(t, commands, env, func(line string) string { return line }, tourChecks)
}

// readmeTour returns README.md's five-minute tour: its first sh block
// (starting the server) and the command lines of its second, comments and
// blank lines left out.
func readmeTour(t *testing.T) (serve string, commands []string) {
	t.Helper()
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := shBlocks(t, string(readme), "Five-minute tour")
	if len(blocks) != 2 {
		t.Fatalf("the tour has %d sh blocks; want 2: starting the server, then the commands", len(blocks))
	}
	return blocks[0], commandLines(blocks[1])
}

// commandLines returns the lines of an sh block that are commands.
func commandLines(block string) []string {
	var lines []string
	for _, line := range strings.Split(block, "\n") {
		line = strings.TrimSpace(line)
		if line != "" && !strings.HasPrefix(line, "#") {
			lines = append(lines, line)
		}
	}
	return lines
}

// tourCairn builds this command (without -race, as users run it) into a
// directory of its own, for PATH, and returns the binary's path.
func tourCairn(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "cairn")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// runTour runs each command line, rewritten by rewrite, through sh with
// env in an empty directory, and checks its output with checks[line] (by
// the README's line). A line without a check fails the test, so the tour
// and the table change together.
func runTour(t *testing.T, commands, env []string, rewrite func(string) string, checks map[string]func(stdout, stderr string) error) {
	t.Helper()
	work := t.TempDir()
	for _, line := range commands {
		check, ok := checks[line]
		if !ok {
			t.Fatalf("tour line %q has no check", line)
		}
		run := rewrite(line)
		cmd := exec.Command("sh", "-c", run)
		cmd.Dir, cmd.Env = work, env
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		if err := cmd.Run(); err != nil {
			t.Fatalf("%s: %v\nstdout:\n%s\nstderr:\n%s", run, err, &out, &errOut)
		}
		if err := check(out.String(), errOut.String()); err != nil {
			t.Fatalf("%s: output %v\nstdout:\n%s\nstderr:\n%s", run, err, &out, &errOut)
		}
	}
	if len(commands) != len(checks) {
		t.Fatalf("ran %d tour commands; the checks cover %d", len(commands), len(checks))
	}
}

// shBlocks returns the ```sh blocks of README's section "## heading".
func shBlocks(t *testing.T, readme, heading string) []string {
	t.Helper()
	_, sec, ok := strings.Cut(readme, "\n## "+heading+"\n")
	if !ok {
		t.Fatalf("README.md has no %q section", "## "+heading)
	}
	sec, _, _ = strings.Cut(sec, "\n## ")
	var blocks []string
	for {
		_, rest, ok := strings.Cut(sec, "```sh\n")
		if !ok {
			return blocks
		}
		block, after, ok := strings.Cut(rest, "```")
		if !ok {
			t.Fatalf("unterminated ```sh block in %q", heading)
		}
		blocks = append(blocks, block)
		sec = after
	}
}

// hasCommand reports whether block has a line whose command, before any
// comment, is cmd.
func hasCommand(block, cmd string) bool {
	for _, line := range strings.Split(block, "\n") {
		line, _, _ = strings.Cut(line, "#")
		if strings.TrimSpace(line) == cmd {
			return true
		}
	}
	return false
}

// startServeChild runs `cairn serve --addr 127.0.0.1:0 --data-dir dataDir`
// until the test ends (then stops it with SIGINT, gracefully) and returns
// the URL it prints.
func startServeChild(t *testing.T, cairn, dataDir string, env []string) string {
	t.Helper()
	cmd := exec.Command(cairn, "serve", "--addr", "127.0.0.1:0", "--data-dir", dataDir)
	cmd.Env = env
	var logs lockedBuffer
	cmd.Stderr = &logs
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	urls := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if m := listening.FindStringSubmatch(sc.Text()); m != nil {
				urls <- m[1]
			}
		}
		exited <- cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("cairn serve exited with %v\n%s", err, logs.String())
			}
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			t.Errorf("cairn serve did not stop within 30 s of SIGINT\n%s", logs.String())
		}
	})
	select {
	case u := <-urls:
		return u
	case err := <-exited:
		t.Fatalf("cairn serve exited before listening: %v\n%s", err, logs.String())
	case <-time.After(60 * time.Second):
		t.Fatalf("cairn serve printed no address within 60 s\n%s", logs.String())
	}
	return ""
}
