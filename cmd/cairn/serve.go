package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/cairnlog/cairn/infra/objstore"
)

type serveOptions struct {
	addr    string
	dataDir string
}

func newServeCmd() *cobra.Command {
	var o serveOptions
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run Cairn as one local process on the embedded filesystem store",
		Long: `serve opens the object store (a local directory by default), checks that it
honours conditional writes (the capability probe), and serves the HTTP API.
It prints the address it listens on. Stop it with Ctrl-C (SIGINT) or SIGTERM.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return serve(ctx, o, cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVar(&o.addr, "addr", "127.0.0.1:7070", "address to listen on (port 0 picks a free port)")
	cmd.Flags().StringVar(&o.dataDir, "data-dir", ".cairn-data", "directory of the embedded filesystem store")
	return cmd
}

func serve(ctx context.Context, o serveOptions, out interface{ Write([]byte) (int, error) }) error {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	store, err := objstore.NewFS(o.dataDir)
	if err != nil {
		return fmt.Errorf("open store %s: %w", o.dataDir, err)
	}
	probeCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err = objstore.Probe(probeCtx, store, "probe")
	cancel()
	if err != nil {
		return fmt.Errorf("store %s: %w", o.dataDir, err)
	}

	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintln(w, `{"status":"ok"}`)
	})

	ln, err := net.Listen("tcp", o.addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", o.addr, err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(out, "cairn listening on http://%s (store: %s)\n", ln.Addr(), o.dataDir)

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down")
	shutCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
