package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// The errors here are produced by real connections on loopback (or are the types the
// resolver returns), as the drivers' HTTP clients meet them.

func get(t *testing.T, client *http.Client, url string) error {
	t.Helper()
	resp, err := client.Get(url)
	if err == nil {
		_, err = io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	if err == nil {
		t.Fatalf("GET %s succeeded, want a network error", url)
	}
	return err
}

func closedPort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func TestNetworkClassify(t *testing.T) {
	n := Network{Endpoint: "https://store.example", HostHint: "the bucket is part of the host name", CAHint: "AWS_CA_BUNDLE"}
	tlsServer := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	defer tlsServer.Close()
	plainServer := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	defer plainServer.Close()

	// A server that accepts and resets every connection (SO_LINGER 0).
	resetter, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer resetter.Close()
	go func() {
		for {
			c, err := resetter.Accept()
			if err != nil {
				return
			}
			buf := make([]byte, 1)
			_, _ = c.Read(buf)
			_ = c.(*net.TCPConn).SetLinger(0)
			c.Close()
		}
	}()
	// A server that accepts and never answers.
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	go func() {
		var held []net.Conn
		for {
			c, err := silent.Accept()
			if err != nil {
				for _, c := range held {
					c.Close()
				}
				return
			}
			held = append(held, c)
		}
	}()

	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	cancelledReq, _ := http.NewRequestWithContext(cancelled, http.MethodGet, plainServer.URL, nil)
	_, cancelledErr := http.DefaultClient.Do(cancelledReq)

	conn, err := net.Dial("tcp", silent.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	_, readTimeout := conn.Read(make([]byte, 1))
	conn.Close()

	cases := []struct {
		name string
		err  error
		code Code
		hint string
	}{
		{"refused", get(t, http.DefaultClient, "http://"+closedPort(t)), CodeTransient, "connection refused"},
		{"unknown host", fmt.Errorf("send: %w", &net.DNSError{Err: "no such host", Name: "bucket.store.example", IsNotFound: true}), CodePermission, "the bucket is part of the host name"},
		{"DNS timeout", &net.DNSError{Err: "i/o timeout", Name: "store.example", IsTimeout: true}, CodeTransient, "DNS lookup"},
		{"untrusted certificate", get(t, http.DefaultClient, tlsServer.URL), CodePermission, "AWS_CA_BUNDLE"},
		{"HTTPS to an HTTP server", get(t, http.DefaultClient, strings.Replace(plainServer.URL, "http:", "https:", 1)), CodePermission, "plain HTTP"},
		{"reset", get(t, http.DefaultClient, "http://"+resetter.Addr().String()), CodeTransient, "reset or cut"},
		{"timeout", get(t, &http.Client{Timeout: 200 * time.Millisecond}, "http://"+silent.Addr().String()), CodeTransient, "time"}, // the client's timeout ends its context
		{"read deadline", fmt.Errorf("reading the response: %w", readTimeout), CodeTransient, "timed out"},
		{"cancelled", cancelledErr, CodeTransient, "cancelled"},
		{"deadline", fmt.Errorf("put: %w", context.DeadlineExceeded), CodeTransient, "ran out of time"},
	}
	for _, c := range cases {
		code, hint, ok := n.Classify(c.err)
		if !ok || code != c.code || !strings.Contains(hint, c.hint) {
			t.Errorf("%s: Classify(%v) = %v, %q, %v; want %v with a hint containing %q", c.name, c.err, code, hint, ok, c.code, c.hint)
		}
	}

	for _, err := range []error{
		nil,
		errors.New("AccessDenied: access denied"),
		fmt.Errorf("reading the source: %w", errors.New("disk on fire")),
	} {
		if code, hint, ok := n.Classify(err); ok {
			t.Errorf("Classify(%v) = %v, %q; want it left to the driver", err, code, hint)
		}
	}
}
