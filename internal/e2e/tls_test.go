//go:build integration

package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// certAuthority is a CA made for one test, with what it signs written as PEM files.
type certAuthority struct {
	dir  string
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  string // path of the CA certificate
}

func newCA(t *testing.T, dir, name string) *certAuthority {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	must(t, err)
	cert, err := x509.ParseCertificate(der)
	must(t, err)
	ca := &certAuthority{dir: dir, cert: cert, key: key, pem: filepath.Join(dir, name+"-ca.pem")}
	must(t, os.WriteFile(ca.pem, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
	return ca
}

// issue signs a certificate for a server (localhost) or a client, and returns the
// paths of its certificate and key and the pair.
func (ca *certAuthority) issue(t *testing.T, name string, server bool) (certPath, keyPath string, pair tls.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.DNSNames, tmpl.IPAddresses = []string{"localhost"}, []net.IP{net.ParseIP("127.0.0.1")}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	must(t, err)
	keyDER, err := x509.MarshalECPrivateKey(key)
	must(t, err)
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
	certPath, keyPath = filepath.Join(ca.dir, name+".pem"), filepath.Join(ca.dir, name+"-key.pem")
	must(t, os.WriteFile(certPath, certPEM, 0o600))
	must(t, os.WriteFile(keyPath, keyPEM, 0o600))
	pair, err = tls.X509KeyPair(certPEM, keyPEM)
	must(t, err)
	return certPath, keyPath, pair
}

// tlsProxy terminates TLS on loopback in front of the dev server (which has no TLS
// of its own), requiring a client certificate signed by clientCA (mutual TLS), and
// forwards the plaintext gRPC stream.
func tlsProxy(t *testing.T, serverPair tls.Certificate, clientCA *certAuthority, upstream string) string {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AddCert(clientCA.cert)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{serverPair}, ClientAuth: tls.RequireAndVerifyClientCert,
		ClientCAs: pool, NextProtos: []string{"h2"}, MinVersion: tls.VersionTLS12})
	must(t, err)
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				if err := c.(*tls.Conn).Handshake(); err != nil {
					return // refused: the client sees the alert
				}
				up, err := net.Dial("tcp", upstream)
				if err != nil {
					return
				}
				defer up.Close()
				done := make(chan struct{}, 2)
				go func() { _, _ = io.Copy(up, c); done <- struct{}{} }()
				go func() { _, _ = io.Copy(c, up); done <- struct{}{} }()
				<-done
			})
		}
	})
	return ln.Addr().String()
}

// TestTemporalOverMutualTLS connects the starter and a worker to Temporal through a
// TLS-terminating proxy that requires client certificates: the right certificates
// connect and replicate; a missing client certificate, one from another CA, and a
// server CA that does not match are refused with a message naming the TLS settings.
func TestTemporalOverMutualTLS(t *testing.T) {
	w := newWorld(t, worldOptions{})
	dir := t.TempDir()
	serverCA, clientCA, rogueCA := newCA(t, dir, "server"), newCA(t, dir, "client"), newCA(t, dir, "rogue")
	_, _, serverPair := serverCA.issue(t, "temporal", true)
	clientCert, clientKey, _ := clientCA.issue(t, "replicator", false)
	rogueCert, rogueKey, _ := rogueCA.issue(t, "intruder", false)
	proxy := tlsProxy(t, serverPair, clientCA, os.Getenv("TEMPORAL_ADDRESS"))

	tlsEnv := func(ca, cert, key string) []string {
		env := []string{"TEMPORAL_ADDRESS=" + proxy, "TEMPORAL_TLS_SERVER_CA_CERT_PATH=" + ca, "TEMPORAL_TLS_SERVER_NAME=localhost"}
		if cert != "" {
			env = append(env, "TEMPORAL_TLS_CLIENT_CERT_PATH="+cert, "TEMPORAL_TLS_CLIENT_KEY_PATH="+key)
		}
		return env
	}
	w.extraEnv = tlsEnv(serverCA.pem, clientCert, clientKey)
	w.startWorker()
	w.writeFile("over-tls.txt", []byte("sent through mutual TLS"))
	if res, code := w.replicateWait("over-tls.txt"); code != 0 || res[0].Outcome != "ok" {
		t.Fatalf("replicate over mutual TLS: exit %d %+v", code, res)
	}
	if got := readSHA(t, w.destination("s3"), "over-tls.txt"); got != sha([]byte("sent through mutual TLS")) {
		t.Errorf("replica read back: %s", got)
	}

	for _, c := range []struct {
		name string
		env  []string
	}{
		{"no client certificate", tlsEnv(serverCA.pem, "", "")},
		{"a client certificate of another CA", tlsEnv(serverCA.pem, rogueCert, rogueKey)},
		{"a server CA that did not sign the server", tlsEnv(rogueCA.pem, clientCert, clientKey)},
	} {
		w.extraEnv = c.env
		_, stderr, code := w.starterErr("status")
		if code == 0 || !strings.Contains(stderr, "TEMPORAL_TLS_CLIENT_CERT_PATH") {
			t.Errorf("%s: exit %d; want a refusal naming the TLS settings, got:\n%s", c.name, code, stderr)
		}
	}
}
