package testenv

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// Registry is a distribution registry on 127.0.0.1 with filesystem storage.
type Registry struct {
	Host    string // 127.0.0.1:PORT
	Dir     string // storage and config
	LogFile string
	cmd     *exec.Cmd
	done    chan struct{}
	auth    string // htpasswd config section, when set
}

// RegistryOption configures StartRegistry.
type RegistryOption func(dir string, r *Registry) error

// WithBasicAuth makes the registry require user and password (htpasswd).
func WithBasicAuth(user, password string) RegistryOption {
	return func(dir string, r *Registry) error {
		hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
		if err != nil {
			return err
		}
		path := filepath.Join(dir, "htpasswd")
		if err := os.WriteFile(path, fmt.Appendf(nil, "%s:%s\n", user, hash), 0o600); err != nil {
			return err
		}
		r.auth = fmt.Sprintf("auth:\n  htpasswd:\n    realm: strata-test\n    path: %s\n", path)
		return nil
	}
}

const registryConfig = `version: 0.1
log:
  level: info
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: %s
  draintimeout: 1s
  headers:
    X-Content-Type-Options: [nosniff]
`

// StartRegistry runs the registry binary from binDir with its state in dir.
func StartRegistry(ctx context.Context, binDir, dir string, opts ...RegistryOption) (*Registry, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		r := &Registry{Host: fmt.Sprintf("127.0.0.1:%d", port), Dir: dir, LogFile: filepath.Join(dir, "registry.log"), done: make(chan struct{})}
		for _, o := range opts {
			if err := o(dir, r); err != nil {
				return nil, err
			}
		}
		if lastErr = r.start(ctx, binDir); lastErr == nil {
			return r, nil
		}
	}
	return nil, lastErr
}

func (r *Registry) start(ctx context.Context, binDir string) error {
	cfg := filepath.Join(r.Dir, "config.yml")
	if err := os.WriteFile(cfg, append(fmt.Appendf(nil, registryConfig, filepath.Join(r.Dir, "storage"), r.Host), r.auth...), 0o644); err != nil {
		return err
	}
	logf, err := os.OpenFile(r.LogFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	r.cmd = exec.Command(filepath.Join(binDir, "registry"), "serve", cfg)
	r.cmd.Stdout, r.cmd.Stderr = logf, logf
	r.cmd.Env = append(os.Environ(), "OTEL_TRACES_EXPORTER=none")
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := r.cmd.Start(); err != nil {
		return fmt.Errorf("start registry: %w", err)
	}
	go func() { _ = r.cmd.Wait(); close(r.done) }()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-r.done:
			return fmt.Errorf("registry exited at start; see %s", r.LogFile)
		case <-ctx.Done():
			r.Stop()
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		resp, err := http.Get("http://" + r.Host + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusUnauthorized && r.auth != "" {
				return nil
			}
		}
	}
	r.Stop()
	return fmt.Errorf("registry did not answer on %s; see %s", r.Host, r.LogFile)
}

// PID is the registry's process id.
func (r *Registry) PID() int { return r.cmd.Process.Pid }

// Stop ends the registry by PID and waits for it.
func (r *Registry) Stop() {
	if r.cmd == nil || r.cmd.Process == nil {
		return
	}
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.done:
	case <-time.After(5 * time.Second):
		_ = r.cmd.Process.Kill()
		<-r.done
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
