// Package errs holds strata's sentinel errors and the exit code each maps to.
//
// Library code wraps these with %w so callers can test them with errors.Is;
// the command line turns them into documented exit codes.
package errs

import (
	"errors"
	"fmt"
	"strings"
)

// Exit codes shared by every strata command. They are documented in the README.
const (
	ExitOK          = 0   // success; for lint: nothing at or above the failure level
	ExitFailed      = 1   // the build failed, or lint found problems at or above the failure level
	ExitUsage       = 2   // bad flags or bad input: missing Dockerfile or context, unparsable file, a base image its registry does not have
	ExitBuilder     = 3   // no builder: BUILDKIT_HOST unreachable or refusing the TLS handshake, buildkitd or runc missing, daemon lost
	ExitRegistry    = 4   // a registry (or its token service) refused a push or a pull, asked for credentials or could not be reached
	ExitInterrupted = 130 // cancelled by SIGINT or SIGTERM
)

var (
	// ErrUsage marks a mistake in how a command was called.
	ErrUsage = errors.New("usage")
	// ErrInput marks input that cannot be used as given (missing Dockerfile, unreadable context).
	ErrInput = errors.New("bad input")
	// ErrBuilder marks a BuildKit daemon that cannot be reached, started or kept.
	ErrBuilder = errors.New("builder unavailable")
	// ErrRegistry marks a registry that refused or failed a request.
	ErrRegistry = errors.New("registry error")
	// ErrBuildFailed marks a build that BuildKit ran and that failed.
	ErrBuildFailed = errors.New("build failed")
	// ErrFindings marks a lint run with findings at or above the failure level.
	ErrFindings = errors.New("lint findings")
	// ErrInterrupted marks work cancelled by a signal.
	ErrInterrupted = errors.New("interrupted")
)

// Code returns the exit code for err.
func Code(err error) int {
	switch {
	case err == nil:
		return ExitOK
	case errors.Is(err, ErrInterrupted):
		return ExitInterrupted
	case errors.Is(err, ErrUsage), errors.Is(err, ErrInput):
		return ExitUsage
	case errors.Is(err, ErrBuilder):
		return ExitBuilder
	case errors.Is(err, ErrRegistry):
		return ExitRegistry
	default:
		return ExitFailed
	}
}

// Hint is an error with the action a user should take, printed after the cause.
type Hint struct {
	Err  error
	Hint string
}

func (h *Hint) Error() string {
	if h.Hint == "" {
		return h.Err.Error()
	}
	return fmt.Sprintf("%s: %s", h.Err, h.Hint)
}

func (h *Hint) Unwrap() error { return h.Err }

// WithHint wraps err with an action for the user; nil stays nil.
func WithHint(err error, hint string) error {
	if err == nil {
		return nil
	}
	return &Hint{Err: err, Hint: hint}
}

// Usagef returns a usage error with a formatted message.
func Usagef(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrUsage, fmt.Sprintf(format, a...))
}

// Inputf returns a bad-input error with a formatted message.
func Inputf(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrInput, fmt.Sprintf(format, a...))
}

// FirstLine is the first line of a message, without surrounding space:
// how a multi-line error (a registry's or a daemon's) reads in one line.
func FirstLine(msg string) string {
	msg = strings.TrimSpace(msg)
	if i := strings.IndexByte(msg, '\n'); i >= 0 {
		msg = strings.TrimSpace(msg[:i])
	}
	return msg
}
