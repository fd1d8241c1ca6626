package config

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// designExample is the policy file of DESIGN section 7a.
const designExample = `
state: file:///var/lib/replicator
policies:
  - name: invoices
    source: file:///mnt/cephfs/invoices
    destinations:
      - name: aws-eu
        url: s3://acme-invoices/eu?region=eu-west-1
        credentials: {aws_profile: replication}
        sse: aws:kms
      - name: gcp-eu
        url: gs://acme-invoices/eu
      - name: azure-we
        url: azblob://acmestore/invoices/eu
        credentials: {azure_connection_string_env: AZURE_ACME_CONN}
    rules:
      - match: "customers/nl/**"
        to: [aws-eu, azure-we]
      - match: "**"
        to: [aws-eu, gcp-eu, azure-we]
    exclude: ["**/*.tmp", ".snapshot/**"]
    mode: mirror
    consistency: eventual
    schedule: {every: 5m}
    safety: {max_delete: 1000, max_delete_percent: 10}
    limits: {bandwidth: 200MiB/s, concurrency: 16}
`

func TestDesignExampleParses(t *testing.T) {
	f, err := Parse(strings.NewReader(designExample))
	if err != nil {
		t.Fatal(err)
	}
	p, err := f.Policy("invoices")
	if err != nil {
		t.Fatal(err)
	}
	if p.Limits.Bandwidth != 200<<20 || p.Schedule.Every != Duration(5*time.Minute) || p.Safety.MaxDeletePercent != 10 {
		t.Fatalf("parsed %+v", p)
	}
	if p.Destinations[0].Credentials.AWSProfile != "replication" || p.Destinations[2].Credentials.AzureConnectionStringEnv != "AZURE_ACME_CONN" {
		t.Fatalf("credentials references lost: %+v", p.Destinations)
	}
	for key, want := range map[string][]string{
		"customers/nl/a.pdf":     {"aws-eu", "azure-we"},
		"customers/de/a.pdf":     {"aws-eu", "gcp-eu", "azure-we"},
		"x.tmp":                  nil,
		"deep/dir/x.tmp":         nil,
		".snapshot/hourly/a.pdf": nil,
		"customers/nl":           {"aws-eu", "azure-we"}, // "**" also matches zero segments
	} {
		if got := p.Route(key); !slices.Equal(got, want) {
			t.Errorf("Route(%q) = %v, want %v", key, got, want)
		}
	}
}

func TestValidationReportsEveryProblem(t *testing.T) {
	_, err := Parse(strings.NewReader(`
state: ""
policies:
  - name: Bad Name
    source: ftp://host/x
    destinations:
      - {name: a, url: "s3://"}
      - {name: a, url: "gs://b/p"}
      - {name: c, url: "azblob://acct"}
      - {name: d, url: "s3://key:hunter2@bucket/p", sse: rot13}
    rules:
      - match: "**"
        to: [a]
      - match: "docs/**"
        to: [nowhere]
      - match: "[unclosed"
        to: []
    mode: sideways
    consistency: sometimes
    limits: {concurrency: -1}
  - name: ok
    source: file:///src
    destinations: [{name: x, url: "file:///dst"}]
  - name: ok
    source: file:///src
    destinations: [{name: x, url: "file:///src"}]
    mode: bidirectional
    rules: [{match: "*.tmp", to: [x]}]
    exclude: ["*.tmp"]
`))
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("err = %v, want a ValidationError", err)
	}
	want := []string{
		"state: is required",
		"policies[0].name: invalid policy name",
		`policies[0].source: unsupported scheme "ftp"`,
		"policies[0].destinations[0].url: s3:// lacks the bucket",
		`policies[0].destinations[1].name: duplicate destination name "a"`,
		"policies[0].destinations[2].url: azblob://acct lacks the account or the container",
		"policies[0].destinations[3].url: the URL of destination d, s3://bucket/p, carries a password in the user information",
		`policies[0].destinations[3].sse: unknown server-side encryption "rot13"`,
		`policies[0].rules[1]: rule "docs/**" can never match`,
		`policies[0].rules[1].to[0]: unknown destination "nowhere"`,
		`policies[0].rules[2].match: invalid pattern "[unclosed"`,
		`policies[0].rules[2]: rule "[unclosed" can never match`,
		"policies[0].rules[2].to: routes to no destination",
		`policies[0].mode: unknown mode "sideways"`,
		`policies[0].consistency: unknown consistency "sometimes"`,
		"policies[0].limits.concurrency: concurrency -1 out of range",
		`policies[2].name: duplicate policy name "ok"`,
		"policies[2].destinations[0].url: is the policy's source",
		`policies[2].rules[0].match: rule "*.tmp" matches nothing`,
		"policies[2].rules: a bidirectional policy syncs every selected key between its two sides",
	}
	msg := err.Error()
	for _, w := range want {
		if !strings.Contains(msg, w) {
			t.Errorf("missing problem %q in:\n%s", w, msg)
		}
	}
	if strings.Contains(msg, "hunter2") || strings.Contains(msg, "key:") {
		t.Errorf("the password of a URL reached the message:\n%s", msg)
	}
	for _, p := range ve.Problems {
		if p.Hint == "" {
			t.Errorf("problem without a hint: %s", p)
		}
	}
	if len(ve.Problems) != len(want) {
		t.Errorf("%d problems, want %d:\n%s", len(ve.Problems), len(want), msg)
	}
}

func TestUnknownFieldIsAnError(t *testing.T) {
	_, err := Parse(strings.NewReader("state: file:///s\npolicies: [{name: a, source: file:///a, destinatons: []}]\n"))
	if err == nil || !strings.Contains(err.Error(), "destinatons") {
		t.Fatalf("err = %v, want it to name the misspelt field", err)
	}
}

func TestLoadOrder(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "r.yaml")
	if err := os.WriteFile(path, []byte(designExample), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv(EnvConfig, path)
	if _, got, err := Load(""); err != nil || got != path {
		t.Fatalf("Load from $%s = %s, %v", EnvConfig, got, err)
	}
	t.Setenv(EnvConfig, "")
	t.Chdir(dir)
	_, _, err := Load("")
	if err == nil || !strings.Contains(err.Error(), "--config") {
		t.Fatalf("missing default config: %v", err)
	}
}

func TestByteRates(t *testing.T) {
	for in, want := range map[string]ByteRate{"200MiB/s": 200 << 20, "50MB/s": 50e6, "1GiB/s": 1 << 30, "1024": 1024, "1.5KiB/s": 1536} {
		if got, err := ParseByteRate(in); err != nil || got != want {
			t.Errorf("ParseByteRate(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	if _, err := ParseByteRate("fast"); err == nil {
		t.Error("ParseByteRate(fast) succeeded")
	}
}

func TestDestinationTuning(t *testing.T) {
	f, err := Parse(strings.NewReader(`
state: file:///state
policies:
  - name: p
    source: file:///src
    destinations:
      - name: gcs
        url: gs://b/p
        tuning: {part_size: 16MiB, threshold: 4MiB, concurrency: 8, single_request: true}
`))
	if err != nil {
		t.Fatal(err)
	}
	got := f.Policies[0].Destinations[0].Tuning.Store()
	if got.PartSize != 16<<20 || got.Threshold != 4<<20 || got.Concurrency != 8 || !got.SingleRequest {
		t.Errorf("tuning = %+v", got)
	}

	_, err = Parse(strings.NewReader(`
state: file:///state
policies:
  - name: p
    source: file:///src
    destinations:
      - name: s3
        url: s3://b/p
        tuning: {part_size: 2GiB, threshold: 3GiB, concurrency: 100, single_request: true}
`))
	want := []string{
		"policies[0].destinations[0].tuning.part_size: part size 2147483648 out of range",
		"policies[0].destinations[0].tuning.threshold: threshold 3221225472 out of range",
		"policies[0].destinations[0].tuning.concurrency: concurrency 100 out of range",
		"policies[0].destinations[0].tuning.single_request: single_request on a non-GCS destination",
	}
	if err == nil {
		t.Fatal("out-of-range tuning accepted")
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("missing %q in:\n%v", w, err)
		}
	}
	if _, err := Parse(strings.NewReader(`
state: file:///state
policies:
  - name: p
    source: file:///src
    destinations: [{name: s3, url: "s3://b/p", tuning: {part_size: 16MiB/s, threshold: -1}}]
`)); err == nil || !strings.Contains(err.Error(), "is a rate, not a size") {
		t.Errorf("a rate as a size: %v", err)
	}
}

func TestExcludesDir(t *testing.T) {
	p := &Policy{Exclude: []string{".snapshot/**", "**/cache/**", "*.tmp"}}
	for dir, want := range map[string]bool{".snapshot/": true, ".snapshot/daily/": true, "a/cache/": true, "cache/": true, "a/": false, "x.tmp/": false} {
		if got := p.ExcludesDir(dir); got != want {
			t.Errorf("ExcludesDir(%q) = %v, want %v", dir, got, want)
		}
	}
}
