package store

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
)

// Network describes the server a cloud driver talks to, for the hints of the errors
// that never got an answer from it. The three cloud drivers classify those errors
// alike through Network.Classify, so a refused connection or an untrusted
// certificate is the same class on S3, GCS and Azure.
type Network struct {
	// Endpoint names the server in hints: a URL, or a description such as
	// "AWS S3 (region eu-west-1)".
	Endpoint string
	// HostHint, when set, follows the hint for an unknown host: which setting of the
	// driver makes up the host name (the bucket with virtual-host addressing, the
	// storage account).
	HostHint string
	// CAHint, when set, names where the driver takes trusted CAs from besides the
	// system's (AWS_CA_BUNDLE).
	CAHint string
}

// Classify returns the class of an error that is about the connection rather than
// an answer of the server (DNS, TLS, refused, reset or timed-out connections, a
// cancelled or expired context), and what the operator should check. ok is false
// for any other error, which the driver classifies by the server's answer.
//
// Configuration problems are CodePermission (never retried): a host name that does
// not resolve, a certificate that is not trusted, an endpoint speaking the other of
// HTTP and HTTPS. Everything that may pass is CodeTransient: refused connections (a
// server restarting), resets, timeouts, DNS servers that did not answer.
func (n Network) Classify(err error) (code Code, hint string, ok bool) {
	if err == nil {
		return 0, "", false
	}
	if code, ok := ContextCode(err); ok {
		return code, "the operation was cancelled or ran out of time; it is retried", true
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) && dnsErr.IsNotFound {
		hint := fmt.Sprintf("unknown host %q: check the endpoint %s", dnsErr.Name, n.Endpoint)
		if n.HostHint != "" {
			hint += " (" + n.HostHint + ")"
		}
		return CodePermission, hint, true
	}
	var (
		verifyErr   *tls.CertificateVerificationError
		authorityEr x509.UnknownAuthorityError
		hostErr     x509.HostnameError
		invalidErr  x509.CertificateInvalidError
		alertErr    tls.AlertError
		recordErr   tls.RecordHeaderError
	)
	switch {
	case errors.As(err, &verifyErr), errors.As(err, &authorityEr), errors.As(err, &hostErr), errors.As(err, &invalidErr):
		cas := "the system CA bundle"
		if n.CAHint != "" {
			cas += " or " + n.CAHint
		}
		return CodePermission, fmt.Sprintf("the TLS certificate of %s is not trusted: check the endpoint and %s", n.Endpoint, cas), true
	case errors.As(err, &recordErr), strings.Contains(err.Error(), "server gave HTTP response to HTTPS client"):
		return CodePermission, fmt.Sprintf("%s speaks plain HTTP, not TLS: check the endpoint's scheme (http://) or use the server's TLS port", n.Endpoint), true
	case errors.As(err, &alertErr):
		return CodePermission, fmt.Sprintf("%s refused the TLS handshake (%v): check the endpoint and its TLS settings", n.Endpoint, alertErr), true
	case errors.Is(err, syscall.ECONNREFUSED):
		return CodeTransient, fmt.Sprintf("connection refused: check that the endpoint %s is up and reachable; retried", n.Endpoint), true
	case errors.As(err, &dnsErr):
		return CodeTransient, fmt.Sprintf("DNS lookup of %q failed; retried (check the resolver if it persists)", dnsErr.Name), true
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE), errors.Is(err, syscall.ECONNABORTED),
		errors.Is(err, io.ErrUnexpectedEOF):
		return CodeTransient, fmt.Sprintf("network error talking to %s (connection reset or cut); retried, check the endpoint if it persists", n.Endpoint), true
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH), errors.Is(err, syscall.ETIMEDOUT):
		return CodeTransient, fmt.Sprintf("%s is unreachable from here; retried (check the network and firewall if it persists)", n.Endpoint), true
	}
	// Only a timeout or an *net.OpError: *url.Error is a net.Error too, and wraps
	// whatever the request failed with, such as the source stream of an upload.
	var netErr net.Error
	if errors.As(err, &netErr) && netErr.Timeout() {
		return CodeTransient, fmt.Sprintf("the request to %s timed out; retried (check the network if it persists)", n.Endpoint), true
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) {
		return CodeTransient, fmt.Sprintf("network error talking to %s (%s); retried", n.Endpoint, opErr.Op), true
	}
	return 0, "", false
}
