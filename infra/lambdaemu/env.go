package lambdaemu

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// State is where an environment is in its life.
type State int

const (
	StateInit     State = iota // process started, init phase running
	StateBusy                  // an invocation is running
	StateIdle                  // waiting for a request, frozen unless Config.NoFreeze
	StateLost                  // frozen for good: routing forgot it (Env.FreezeForever)
	StateStopping              // being taken away
	StateDead                  // every process gone
)

func (s State) String() string {
	return [...]string{"init", "busy", "idle", "lost", "stopping", "dead"}[s]
}

// Env is one execution environment: a bootstrap process (and the external
// extensions beside it) in a process group of its own, with its own
// Runtime API endpoint. Its methods are safe for concurrent use.
type Env struct {
	f       *Function
	id      int
	stream  string // AWS_LAMBDA_LOG_STREAM_NAME
	log     *logBuffer
	dir     string
	ln      net.Listener
	srv     *http.Server
	runtime *exec.Cmd
	exts    []*exec.Cmd
	exited  []chan struct{} // one per process, the runtime's first; closed when it exited
	names   map[string]bool // external extension names
	pid     int
	started time.Time
	dead    chan struct{} // closed once every process is gone

	// Guarded by f.mu.
	state          State
	stats          Counters
	frozen         bool
	inited         bool
	runtimeWaiting bool
	queued         *invocation      // assigned during init
	current        *invocation      // running: from dispatch until the runtime and extensions asked for more
	invokes        chan *invocation // capacity 1, sent to with f.mu held
	extensions     map[string]*extension
	unregistered   int // external extensions not registered yet
	idleSince      time.Time
	idleGen        int // bumped at each idle period, so a stale reap timer does nothing
	initTimer      *time.Timer
	lostAfter      bool  // FreezeForever: lose it at its next idle
	exitReason     error // why the emulator ended it; nil if it exited unasked
	initErr        []byte
	shutdown       []byte // the SHUTDOWN event, once the Shutdown phase began
}

// ID returns the environment's number, from 1 in start order.
func (e *Env) ID() int { return e.id }

// PID returns the runtime's process ID, which is also the process group's.
func (e *Env) PID() int { return e.pid }

// Log returns what the environment's processes wrote so far.
func (e *Env) Log() string { return e.log.String() }

// Done is closed once the environment's processes are all gone.
func (e *Env) Done() <-chan struct{} { return e.dead }

// State returns the environment's state now.
func (e *Env) State() State {
	e.f.mu.Lock()
	defer e.f.mu.Unlock()
	return e.state
}

func (e *Env) String() string { return fmt.Sprintf("%s env %d (pid %d)", e.f.cfg.Name, e.id, e.pid) }

// startEnv starts environment id's processes. Called with f.mu held.
func (f *Function) startEnv(id int) (*Env, error) {
	e := &Env{
		f: f, id: id, log: &logBuffer{}, dead: make(chan struct{}), names: map[string]bool{},
		invokes: make(chan *invocation, 1), extensions: map[string]*extension{}, state: StateInit,
	}
	e.stream = defaultLogStream(id)
	if f.cfg.LogStream != nil {
		e.stream = f.cfg.LogStream(id)
	}
	var err error
	if e.dir, err = os.MkdirTemp("", "lambdaemu-env-"); err != nil {
		return nil, fmt.Errorf("start env %d: %w", id, err)
	}
	if e.ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		os.RemoveAll(e.dir)
		return nil, fmt.Errorf("start env %d: %w", id, err)
	}
	e.srv = &http.Server{Handler: e.runtimeAPI(), ReadHeaderTimeout: 10 * time.Second}
	go e.srv.Serve(e.ln)

	var out io.Writer = e.log
	if f.cfg.Logs != nil {
		out = io.MultiWriter(e.log, f.cfg.Logs)
	}
	env := e.environ()
	e.runtime = e.command(f.cfg.Bootstrap, env, out, 0)
	if err := e.runtime.Start(); err != nil {
		e.srv.Close()
		os.RemoveAll(e.dir)
		return nil, fmt.Errorf("start env %d: %w", id, err)
	}
	e.pid = e.runtime.Process.Pid
	e.started = time.Now()
	for _, path := range f.cfg.Extensions {
		c := e.command(path, env, out, e.pid)
		if err := c.Start(); err != nil {
			fmt.Fprintf(e.log, "lambdaemu: extension %s: %v\n", path, err)
			continue
		}
		e.exts = append(e.exts, c)
		e.names[filepath.Base(path)] = true
	}
	e.unregistered = len(e.exts)
	for _, c := range append([]*exec.Cmd{e.runtime}, e.exts...) {
		ch := make(chan struct{})
		e.exited = append(e.exited, ch)
		go func() { _ = c.Wait(); close(ch) }()
	}
	e.initTimer = time.AfterFunc(f.cfg.InitTimeout, func() { f.initTimedOut(e) })
	go e.watch()
	f.afterUnlock(func() {
		if f.cfg.Hooks.Started != nil {
			f.cfg.Hooks.Started(e)
		}
	})
	return e, nil
}

// command makes one process of the environment, in process group pgid
// (0: a new group led by the process itself), killed if the emulator dies.
func (e *Env) command(path string, env []string, out io.Writer, pgid int) *exec.Cmd {
	c := exec.Command(path)
	c.Dir = e.dir
	c.Env = env
	c.Stdout, c.Stderr = out, out
	c.SysProcAttr = sysProcAttr(pgid)
	c.WaitDelay = time.Second
	return c
}

// environ is what Lambda sets for a provided.al2023 runtime, under the
// function's own variables.
func (e *Env) environ() []string {
	cfg := e.f.cfg
	vars := map[string]string{
		"AWS_LAMBDA_RUNTIME_API":          e.ln.Addr().String(),
		"AWS_LAMBDA_FUNCTION_NAME":        cfg.Name,
		"AWS_LAMBDA_FUNCTION_VERSION":     "$LATEST",
		"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": strconv.Itoa(cfg.MemoryMB),
		"AWS_LAMBDA_LOG_STREAM_NAME":      e.stream,
		"AWS_LAMBDA_LOG_GROUP_NAME":       "/aws/lambda/" + cfg.Name,
		"AWS_LAMBDA_INITIALIZATION_TYPE":  "on-demand",
		"AWS_REGION":                      cfg.Region,
		"AWS_DEFAULT_REGION":              cfg.Region,
		"AWS_EXECUTION_ENV":               "AWS_Lambda_provided.al2023",
		"AWS_EC2_METADATA_DISABLED":       "true",
		"_HANDLER":                        "bootstrap",
		"LAMBDA_TASK_ROOT":                filepath.Dir(cfg.Bootstrap),
		"LAMBDA_RUNTIME_DIR":              filepath.Dir(cfg.Bootstrap),
		"TZ":                              ":UTC",
		"LANG":                            "en_US.UTF-8",
		"HOME":                            e.dir,
		"TMPDIR":                          e.dir,
		"PATH":                            "/usr/local/bin:/usr/bin:/bin",
	}
	for k, v := range cfg.Env {
		vars[k] = v
	}
	env := make([]string, 0, len(vars))
	for k, v := range vars {
		env = append(env, k+"="+v)
	}
	return env
}

func defaultLogStream(id int) string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return time.Now().UTC().Format("2006/01/02") + "/[$LATEST]" + hex.EncodeToString(b[:])
}

// signal sends sig to the whole process group.
func (e *Env) signal(sig syscall.Signal) {
	if err := syscall.Kill(-e.pid, sig); err != nil && err != syscall.ESRCH {
		fmt.Fprintf(e.log, "lambdaemu: %v to group %d: %v\n", sig, e.pid, err)
	}
}

// freeze stops the group. Called with f.mu held.
func (e *Env) freeze() {
	if e.frozen {
		return
	}
	e.signal(syscall.SIGSTOP)
	e.frozen = true
	e.stats.Freezes++
	e.f.afterUnlock(func() {
		e.waitStopped()
		if e.f.cfg.Hooks.Frozen != nil {
			e.f.cfg.Hooks.Frozen(e)
		}
	})
}

// waitStopped returns once every process of e is stopped (SIGSTOP is
// delivered asynchronously), or e was thawed, or a second passed: what
// follows a freeze may count on a process that runs nothing.
func (e *Env) waitStopped() {
	pids := []int{e.pid}
	for _, c := range e.exts {
		pids = append(pids, c.Process.Pid)
	}
	deadline := time.Now().Add(time.Second)
	for _, pid := range pids {
		for !stopped(pid) && time.Now().Before(deadline) {
			e.f.mu.Lock()
			frozen := e.frozen
			e.f.mu.Unlock()
			if !frozen {
				return
			}
			time.Sleep(time.Millisecond)
		}
	}
}

// thaw continues the group. Called with f.mu held.
func (e *Env) thaw() {
	if !e.frozen {
		return
	}
	e.signal(syscall.SIGCONT)
	e.frozen = false
}

// watch waits for the runtime to exit, kills what is left of the group
// unless a Shutdown phase is running, and buries the environment once
// every process is gone.
func (e *Env) watch() {
	<-e.exited[0]
	e.f.mu.Lock()
	stopping := e.state == StateStopping
	if !stopping && e.exitReason == nil {
		if e.inited {
			e.stats.Crashes++
			e.exitReason = fmt.Errorf("%w: runtime exited (%v)", ErrEnvDied, e.runtime.ProcessState)
		} else {
			e.stats.InitErrors++
			e.exitReason = fmt.Errorf("%w: Runtime.ExitError: runtime exited during init (%v)", ErrInit, e.runtime.ProcessState)
		}
		e.state = StateStopping
	}
	e.f.mu.Unlock()
	if !stopping {
		e.signal(syscall.SIGCONT)
		e.signal(syscall.SIGKILL)
	}
	for _, ch := range e.exited[1:] {
		<-ch
	}
	e.f.bury(e)
}

// logBuffer collects a process's output; safe for concurrent use.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
