//go:build integration

package e2e

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"go.temporal.io/sdk/client"

	"github.com/cloudrepl/replicator/internal/wire"
)

// chromiumPath finds Debian's chromium; under the test command (which installs it)
// its absence fails the test, elsewhere it skips.
func chromiumPath(t *testing.T) string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("REPLICATOR_TOOLS_BIN") != "" {
		t.Fatal("chromium is missing: bash deploy/local/install.sh chromium (apt-get install chromium)")
	}
	t.Skip("chromium is not installed")
	return ""
}

func freePort(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// TestWebUIThroughTheCodec opens Temporal's Web UI in headless Chromium, finds a
// replication by its ReplicationPolicy search attribute, and reads its result on the
// workflow's page: in the clear while the UI's codec endpoint (the worker's
// --codec-addr) decodes for it, and as ciphertext when the endpoint refuses it (it
// wants a token the browser does not hold). A Temporal dev server of its own, because
// the UI's codec endpoint is a setting of the server.
func TestWebUIThroughTheCodec(t *testing.T) {
	chromium := chromiumPath(t)
	temporalBin := filepath.Join(os.Getenv("REPLICATOR_TOOLS_BIN"), "temporal")
	if _, err := os.Stat(temporalBin); err != nil {
		t.Skipf("the Temporal CLI is not installed (%v): run through make test", err)
	}
	frontend, ui, codecPort := freePort(t), freePort(t), freePort(t)
	args := []string{"server", "start-dev", "--ip", "127.0.0.1", "--ui-ip", "127.0.0.1",
		"--port", fmt.Sprint(frontend), "--ui-port", fmt.Sprint(ui), "--log-level", "error",
		"--ui-codec-endpoint", fmt.Sprintf("http://127.0.0.1:%d", codecPort)}
	for _, sa := range []string{"ReplicationPolicy=Keyword", "ReplicationKey=Keyword", "ReplicationOutcome=Keyword", "ReplicationBytes=Int", "ReplicationConflicts=Int"} {
		args = append(args, "--search-attribute", sa)
	}
	server := exec.Command(temporalBin, args...)
	must(t, server.Start())
	t.Cleanup(func() { _ = server.Process.Kill(); _ = server.Wait() })
	address := fmt.Sprintf("127.0.0.1:%d", frontend)
	var c client.Client
	for deadline := time.Now().Add(time.Minute); ; {
		var err error
		if c, err = client.Dial(client.Options{HostPort: address}); err == nil {
			if _, err = c.CheckHealth(context.Background(), nil); err == nil {
				break
			}
			c.Close()
		}
		if time.Now().After(deadline) {
			t.Fatalf("the dev server on %s did not come up: %v", address, err)
		}
		time.Sleep(300 * time.Millisecond)
	}
	defer c.Close()

	w := newWorld(t, worldOptions{})
	var k [32]byte
	_, _ = rand.Read(k[:])
	uiOrigin := fmt.Sprintf("http://127.0.0.1:%d", ui)
	w.extraEnv = append(w.extraEnv, "TEMPORAL_ADDRESS="+address,
		"REPLICATOR_CODEC_KEYS=ui-key="+base64.StdEncoding.EncodeToString(k[:]),
		"REPLICATOR_CODEC_CORS_ORIGINS="+uiOrigin)
	w.workerArgs = []string{"--codec-addr", fmt.Sprintf("127.0.0.1:%d", codecPort)}
	key := "board/minutes-2026-11.pdf"
	sum := w.writeFile(key, []byte("%PDF minutes of the board meeting"))
	// First the codec endpoint wants a token the browser does not have.
	guarded := w.startWorker("REPLICATOR_CODEC_TOKEN=operators-only")
	res, code := w.replicateWait(key)
	if code != 0 || res[0].Outcome != "ok" || res[0].SHA256 != sum {
		t.Fatalf("replicate: exit %d %+v", code, res)
	}
	id := wire.FileWorkflowID(w.policy, key)
	desc, err := c.DescribeWorkflowExecution(context.Background(), id, "")
	must(t, err)
	runID := desc.WorkflowExecutionInfo.Execution.RunId

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromium), chromedp.NoSandbox, chromedp.Flag("headless", true))
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	// page opens url in a fresh browser tab and returns its text once want says it is
	// complete (or the last text after a minute).
	page := func(u string, want func(string) bool) string {
		ctx, cancel := chromedp.NewContext(allocCtx)
		defer cancel()
		ctx, cancelTime := context.WithTimeout(ctx, 90*time.Second)
		defer cancelTime()
		if _, err := chromedp.Run(ctx, chromedp.Navigate(u)); err != nil {
			t.Fatalf("open %s: %v", u, err)
		}
		var text string
		for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
			var err error
			if text, err = chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`)); err != nil {
				t.Fatalf("read %s: %v", u, err)
			}
			if want(text) {
				break
			}
		}
		return text
	}

	list := page(uiOrigin+"/namespaces/default/workflows?query="+url.QueryEscape(fmt.Sprintf(`ReplicationPolicy="%s"`, w.policy)),
		func(s string) bool { return strings.Contains(s, id) })
	if !strings.Contains(list, id) {
		t.Fatalf("the UI's list for ReplicationPolicy=%q does not show %s:\n%.3000s", w.policy, id, list)
	}
	workflowPage := fmt.Sprintf("%s/namespaces/default/workflows/%s/%s/history", uiOrigin, url.PathEscape(id), runID)

	// The UI shows an undecoded payload as its JSON, metadata in base64.
	encrypted := func(s string) bool {
		return strings.Contains(s, "binary/encrypted") || strings.Contains(s, base64.StdEncoding.EncodeToString([]byte("binary/encrypted")))
	}
	withoutToken := page(workflowPage, func(s string) bool { return encrypted(s) || strings.Contains(s, sum) })
	if strings.Contains(withoutToken, sum) {
		t.Errorf("without the codec's token the UI shows the result in the clear (SHA-256 %s)", sum)
	}
	if !encrypted(withoutToken) {
		t.Errorf("without the codec's token the UI does not show the encrypted payload:\n%.4000s", withoutToken)
	}

	// An operator's codec endpoint (no token): the same page decodes.
	guarded.stop(t)
	w.startWorker()
	withCodec := page(workflowPage, func(s string) bool { return strings.Contains(s, sum) })
	if !strings.Contains(withCodec, sum) {
		t.Errorf("through the codec endpoint the UI does not show the result's SHA-256 %s:\n%.4000s", sum, withCodec)
	}
	if encrypted(withCodec) {
		t.Errorf("through the codec endpoint the UI still shows encrypted payloads")
	}
}
