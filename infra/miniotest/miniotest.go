package miniotest

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cairnlog/cairn/infra/objstore/s3store"
)

// BinaryEnv names the variable that points at the MinIO binary; the
// Makefile sets it.
const BinaryEnv = "CAIRN_MINIO_BIN"

// defaultBinary is where `make minio` installs the pinned build, below
// $HOME.
const defaultBinary = ".cache/cairn/minio-7aac2a2c5b7c/minio"

// startTimeout bounds the wait for /minio/health/live.
const startTimeout = 60 * time.Second

// howToFix ends every start-up error.
const howToFix = "run `make test` (it builds the pinned MinIO once), or `make minio` and set " + BinaryEnv + " to the binary"

// Server is one MinIO process with its data directory.
type Server struct {
	bin      string
	tmp      string // holds data/ and minio.log
	addr     string // 127.0.0.1:port of the S3 API
	console  string // 127.0.0.1:port of the console
	user     string
	password string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has exited
}

// Binary returns the MinIO binary to run: $CAIRN_MINIO_BIN, else the
// default install location. It fails if the file is missing.
func Binary() (string, error) {
	bin := os.Getenv(BinaryEnv)
	if bin == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("miniotest: no %s and no home directory: %w; %s", BinaryEnv, err, howToFix)
		}
		bin = filepath.Join(home, defaultBinary)
	}
	if st, err := os.Stat(bin); err != nil || st.IsDir() {
		return "", fmt.Errorf("miniotest: MinIO binary %s not found; %s", bin, howToFix)
	}
	return bin, nil
}

// Start starts a MinIO server on free loopback ports with an empty data
// directory and waits until it is live.
func Start() (*Server, error) {
	bin, err := Binary()
	if err != nil {
		return nil, err
	}
	parent := dataParent()
	sweep(parent)
	tmp, err := os.MkdirTemp(parent, tmpPattern)
	if err != nil {
		return nil, fmt.Errorf("miniotest: %w", err)
	}
	if err := os.WriteFile(filepath.Join(tmp, ownerFile), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		os.RemoveAll(tmp)
		return nil, fmt.Errorf("miniotest: %w", err)
	}
	s := &Server{bin: bin, tmp: tmp, user: "cairn-test", password: rand.Text()}
	// A free port can be taken by someone else before MinIO binds it; try
	// a few fresh ones.
	for attempt := 1; ; attempt++ {
		if s.addr, err = freePort(); err == nil {
			s.console, err = freePort()
		}
		if err == nil {
			err = s.start()
		}
		if err == nil {
			return s, nil
		}
		if attempt == 3 {
			os.RemoveAll(tmp)
			return nil, err
		}
	}
}

// Endpoint returns the S3 endpoint URL, e.g. "http://127.0.0.1:41234".
func (s *Server) Endpoint() string { return "http://" + s.addr }

// Credentials returns the root user and password.
func (s *Server) Credentials() (user, password string) { return s.user, s.password }

// LogPath returns the file MinIO's output goes to.
func (s *Server) LogPath() string { return filepath.Join(s.tmp, "minio.log") }

// NewStore returns a store over bucket (created if missing) with every key
// under prefix ("" for none).
func (s *Server) NewStore(ctx context.Context, bucket, prefix string) (*s3store.Store, error) {
	return s3store.New(ctx, s3store.Config{
		Endpoint:     s.Endpoint(),
		Region:       s3store.DefaultRegion,
		Bucket:       bucket,
		Prefix:       prefix,
		PathStyle:    true,
		AccessKey:    s.user,
		SecretKey:    s.password,
		CreateBucket: true,
	})
}

// Kill stops the server abruptly (SIGKILL), keeping its data, to simulate
// an outage; Restart brings it back.
func (s *Server) Kill() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.killLocked()
}

// Restart starts the server again on the same ports and data directory
// (killing it first if it is running) and waits until it is live.
func (s *Server) Restart() error {
	s.mu.Lock()
	if err := s.killLocked(); err != nil {
		s.mu.Unlock()
		return err
	}
	s.mu.Unlock()
	return s.start()
}

// Stop kills the server and removes its data directory. The Server cannot
// be restarted afterwards.
func (s *Server) Stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	err := s.killLocked() // the data goes too: nothing to shut down gracefully for
	if rerr := os.RemoveAll(s.tmp); err == nil {
		err = rerr
	}
	return err
}

func (s *Server) killLocked() error {
	if s.cmd == nil {
		return nil
	}
	if err := s.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("miniotest: kill: %w", err)
	}
	<-s.exited
	s.cmd = nil
	return nil
}

// start launches the process and waits until it answers the liveness
// probe, or fails with the tail of its log.
func (s *Server) start() error {
	logFile, err := os.OpenFile(s.LogPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("miniotest: %w", err)
	}
	defer logFile.Close() // the child holds its own descriptor
	cmd := exec.Command(s.bin, "server", "--quiet", "--address", s.addr, "--console-address", s.console, filepath.Join(s.tmp, "data"))
	cmd.Env = append(os.Environ(),
		"MINIO_ROOT_USER="+s.user,
		"MINIO_ROOT_PASSWORD="+s.password,
		"MINIO_BROWSER=off",
		"MINIO_UPDATE=off",
		"MINIO_CI_CD=on", // small buffer pool, no root-disk refusal
	)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("miniotest: start %s: %w; %s", s.bin, err, howToFix)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()

	if err := s.waitLive(exited); err != nil {
		cmd.Process.Kill()
		<-exited
		return fmt.Errorf("miniotest: %w\n--- %s (tail) ---\n%s", err, s.LogPath(), tail(s.LogPath(), 30))
	}
	s.mu.Lock()
	s.cmd, s.exited = cmd, exited
	s.mu.Unlock()
	return nil
}

func (s *Server) waitLive(exited <-chan struct{}) error {
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(startTimeout)
	for {
		resp, err := client.Get(s.Endpoint() + "/minio/health/live")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-exited:
			return fmt.Errorf("MinIO on %s exited during start-up", s.addr)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("MinIO on %s not live after %v (last: %v)", s.addr, startTimeout, err)
		}
	}
}

// DirEnv names a variable that sets where the server's temporary data
// directory is created.
const DirEnv = "CAIRN_MINIO_DIR"

// dataParent returns where to create the data directory: $CAIRN_MINIO_DIR,
// else /dev/shm when it exists (MinIO fdatasyncs every object; on a RAM disk
// the suite runs several times faster, and tests need no durability across
// a machine crash), else the system temporary directory.
func dataParent() string {
	if d := os.Getenv(DirEnv); d != "" {
		return d
	}
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		if f, err := os.CreateTemp("/dev/shm", "cairn-probe-"); err == nil {
			f.Close()
			os.Remove(f.Name())
			return "/dev/shm"
		}
	}
	return os.TempDir()
}

const (
	tmpPattern = "cairn-minio-"
	ownerFile  = "owner.pid" // the test binary that created the directory
)

// sweep removes data directories whose test binary has died without Stop
// (killed at a timeout, say): on /dev/shm they would hold memory until
// reboot. MinIO itself died with its parent (see sysProcAttr).
func sweep(parent string) {
	dirs, _ := filepath.Glob(filepath.Join(parent, tmpPattern+"*"))
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, ownerFile))
		if err != nil {
			continue
		}
		if pid, err := strconv.Atoi(string(b)); err == nil && !processAlive(pid) {
			os.RemoveAll(d)
		}
	}
}

func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("miniotest: find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// tail returns the last n lines of a file, for error messages.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// shared is the server of this test binary. RunMain writes it once, before
// any test runs; Get only reads it.
var shared struct {
	srv *Server
	err error
}

// M is what RunMain needs of a *testing.M. The package takes small
// interfaces instead of importing "testing", so that a program (cairn bench)
// can use Start and Stop without linking the test framework.
type M interface {
	Run() (code int)
}

// TB is what Get needs of a testing.TB.
type TB interface {
	Helper()
	Fatal(args ...any)
	Fatalf(format string, args ...any)
}

// RunMain starts one MinIO server for the test binary, runs the tests and
// stops the server; it returns m.Run's exit code. If the server cannot
// start, the tests still run and every Get fails them with the reason.
func RunMain(m M) int {
	shared.srv, shared.err = Start()
	code := m.Run()
	if shared.srv != nil {
		if err := shared.srv.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "miniotest: stop: %v\n", err)
		}
	}
	return code
}

// Get returns the server RunMain started, failing tb if there is none.
func Get(tb TB) *Server {
	tb.Helper()
	switch {
	case shared.err != nil:
		tb.Fatalf("MinIO is not available: %v", shared.err)
	case shared.srv == nil:
		tb.Fatal("miniotest.Get: no server; call miniotest.RunMain from TestMain: func TestMain(m *testing.M) { os.Exit(miniotest.RunMain(m)) }")
	}
	return shared.srv
}
