// Package devserver builds (once) and starts the Temporal CLI's dev server,
// pinned in the nested tools module, for the demo and the integration tests.
package devserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"time"

	"go.temporal.io/sdk/client"
)

// RepoRoot finds the repository root (the directory holding go.mod and
// tools/go.mod) from the working directory upwards.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "tools", "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("cannot find the repository root (tools/go.mod) above the working directory")
		}
		dir = parent
	}
}

// Binary returns the path of the temporal CLI, building it from the tools
// module into bin/ when it is missing. The first build takes minutes; the
// Go build cache keeps later ones fast.
func Binary(logw io.Writer) (string, error) {
	if p := os.Getenv("TEMPORAL_CLI"); p != "" {
		return p, nil
	}
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(root, "bin", "temporal")
	if runtime.GOOS == "windows" {
		bin += ".exe"
	}
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	fmt.Fprintln(logw, "building the Temporal dev server (github.com/temporalio/cli, pinned in tools/go.mod); the first build takes a few minutes...")
	cmd := exec.Command("go", "-C", filepath.Join(root, "tools"), "build", "-o", bin, "github.com/temporalio/cli/cmd/temporal")
	cmd.Stdout, cmd.Stderr = logw, logw
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("build temporal CLI: %w", err)
	}
	return bin, nil
}

// Options of a dev server.
type Options struct {
	Port   int    // frontend port; 0 picks a free one
	UIPort int    // Web UI port; 0 picks a free one; -1 turns the UI off
	DBFile string // "" keeps everything in memory
	// UICodecEndpoint points the Web UI at a codec server, so it shows
	// encrypted payloads decrypted.
	UICodecEndpoint string
	Log             io.Writer
}

// Server is a running dev server.
type Server struct {
	Address string
	UIURL   string
	cmd     *exec.Cmd
	done    chan struct{}
}

// Start starts a dev server and waits until its frontend answers.
func Start(ctx context.Context, opts Options) (*Server, error) {
	bin, err := Binary(orDiscard(opts.Log))
	if err != nil {
		return nil, err
	}
	if opts.Port == 0 {
		if opts.Port, err = freePort(); err != nil {
			return nil, err
		}
	}
	args := []string{"server", "start-dev", "--ip", "127.0.0.1", "--port", strconv.Itoa(opts.Port), "--log-level", "error"}
	s := &Server{Address: fmt.Sprintf("127.0.0.1:%d", opts.Port), done: make(chan struct{})}
	switch {
	case opts.UIPort < 0:
		args = append(args, "--headless")
	default:
		if opts.UIPort == 0 {
			if opts.UIPort, err = freePort(); err != nil {
				return nil, err
			}
		}
		args = append(args, "--ui-port", strconv.Itoa(opts.UIPort))
		s.UIURL = fmt.Sprintf("http://127.0.0.1:%d", opts.UIPort)
		if opts.UICodecEndpoint != "" {
			args = append(args, "--ui-codec-endpoint", opts.UICodecEndpoint)
		}
	}
	if opts.DBFile != "" {
		if err := os.MkdirAll(filepath.Dir(opts.DBFile), 0o755); err != nil {
			return nil, err
		}
		args = append(args, "--db-filename", opts.DBFile)
	}
	s.cmd = exec.Command(bin, args...)
	s.cmd.Stdout, s.cmd.Stderr = orDiscard(opts.Log), orDiscard(opts.Log)
	dieWithParent(s.cmd)
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start temporal dev server: %w", err)
	}
	go func() { _ = s.cmd.Wait(); close(s.done) }()
	if err := s.waitReady(ctx, 60*time.Second); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

func (s *Server) waitReady(ctx context.Context, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		select {
		case <-s.done:
			return errors.New("temporal dev server exited during start (is the port in use?)")
		default:
		}
		c, err := client.Dial(client.Options{HostPort: s.Address, Logger: quietLogger{}})
		if err == nil {
			_, err = c.CheckHealth(ctx, &client.CheckHealthRequest{})
			c.Close()
			if err == nil {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("temporal dev server at %s not ready after %s: %v", s.Address, limit, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// Stop ends the dev server and waits for it to exit.
func (s *Server) Stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Signal(os.Interrupt)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
}

// Listening tells whether something accepts connections on addr.
func Listening(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, 300*time.Millisecond)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func orDiscard(w io.Writer) io.Writer {
	if w == nil {
		return io.Discard
	}
	return w
}

type quietLogger struct{}

func (quietLogger) Debug(string, ...interface{}) {}
func (quietLogger) Info(string, ...interface{})  {}
func (quietLogger) Warn(string, ...interface{})  {}
func (quietLogger) Error(string, ...interface{}) {}
