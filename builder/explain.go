package builder

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/strata-build/strata/errs"
)

// tlsTrouble maps what BuildKit's client reports when a TLS handshake fails
// to the cause in a user's words and what to do about it. The first match wins.
var tlsTrouble = []struct{ match, cause, hint string }{
	{"certificate signed by unknown authority",
		"the builder's certificate is not signed by the CA in --tlscacert",
		"give the CA certificate that signed buildkitd's --tlscert"},
	{"certificate has expired or is not yet valid",
		"the builder's certificate has expired or is not valid yet",
		"renew buildkitd's certificate (and check both clocks)"},
	{"certificate is valid for",
		"the builder's certificate does not carry the name strata checks",
		"set --tlsservername to a name in buildkitd's certificate"},
	{"certificate is not valid for any names",
		"the builder's certificate does not carry the name strata checks",
		"set --tlsservername to a name in buildkitd's certificate"},
	{"certificate required",
		"the builder asks for a client certificate",
		"set --tlscert and --tlskey (or --tlsdir, or " + EnvTLSCert + " and " + EnvTLSKey + ")"},
	{"expired certificate",
		"the builder refused the client certificate as expired",
		"issue a new --tlscert from the CA buildkitd trusts"},
	{"unknown certificate authority",
		"the builder refused the client certificate",
		"give a --tlscert signed by the CA buildkitd trusts (its --tlscacert)"},
	{"bad certificate",
		"the builder refused the client certificate",
		"give a --tlscert signed by the CA buildkitd trusts (its --tlscacert)"},
	{"first record does not look like a TLS handshake",
		"the builder does not speak TLS",
		"drop the TLS flags and BUILDKIT_TLS_* variables, or start buildkitd with --tlscacert, --tlscert and --tlskey"},
}

// explain turns a failed probe of e into one line naming the cause and the
// fix, all of them builder errors (exit code 3).
func explain(ctx context.Context, e *Endpoint, t TLS, err error) error {
	msg := err.Error()
	if !t.IsZero() {
		// A server that refuses the client certificate says so in an
		// alert after the handshake, which gRPC may miss when its first
		// write already failed: shake hands again and read the alert.
		if herr := handshake(ctx, e.Addr, t); herr != nil {
			msg += " " + herr.Error()
		}
	}
	if strings.Contains(msg, "certificate required") && (t.Cert != "" || t.Dir != "") {
		// Go's client sends no certificate when the one it has is not
		// signed by a CA the server names as acceptable.
		msg = strings.ReplaceAll(msg, "certificate required", "bad certificate")
	}
	for _, tr := range tlsTrouble {
		if strings.Contains(msg, tr.match) {
			return errs.WithHint(fmt.Errorf("%w: %s: %s", errs.ErrBuilder, e.Source, tr.cause), tr.hint)
		}
	}
	if t.IsZero() && speaksTLS(ctx, e.Addr) {
		return errs.WithHint(fmt.Errorf("%w: %s: the builder accepts only TLS connections", errs.ErrBuilder, e.Source),
			"set --tlscacert, --tlscert and --tlskey (or --tlsdir, or the BUILDKIT_TLS_* variables)")
	}
	return errs.WithHint(fmt.Errorf("%w: %s does not answer: %v", errs.ErrBuilder, e.Source, err),
		"start buildkitd there, or unset it to let strata start a local one")
}

// speaksTLS reports whether a tcp:// address answers a TLS handshake. It
// only looks at the protocol: nothing is sent after the handshake, so the
// certificate is not checked here.
func speaksTLS(ctx context.Context, addr string) bool {
	u, err := url.Parse(addr)
	if err != nil || u.Scheme != "tcp" {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	d := tls.Dialer{Config: &tls.Config{InsecureSkipVerify: true}} //nolint:gosec // protocol detection only
	conn, err := d.DialContext(ctx, "tcp", u.Host)
	if err == nil {
		conn.Close()
		return true
	}
	// A server that wants a client certificate may end the handshake with
	// an alert: it still speaks TLS.
	var alert tls.AlertError
	var opErr *net.OpError
	return errors.As(err, &alert) || errors.As(err, &opErr) && errors.As(opErr.Err, &alert)
}

// handshake does a TLS handshake with t's settings and waits briefly for
// the alert a server sends after it when it refuses the client certificate.
func handshake(ctx context.Context, addr string, t TLS) error {
	u, err := url.Parse(addr)
	if err != nil || u.Scheme != "tcp" {
		return nil
	}
	cfg, err := t.config(addr)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := (&tls.Dialer{Config: cfg}).DialContext(ctx, "tcp", u.Host)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetReadDeadline(time.Now().Add(time.Second))
	_, err = conn.Read(make([]byte, 1))
	var alert tls.AlertError
	if errors.As(err, &alert) || err != nil && strings.Contains(err.Error(), "tls: ") {
		return err
	}
	return nil
}
