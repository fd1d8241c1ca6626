package config

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// parseProblems parses a config and returns its problems (nil when it is valid).
func parseProblems(t *testing.T, body string) []Problem {
	t.Helper()
	_, err := Parse(strings.NewReader(body))
	if err == nil {
		return nil
	}
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("err = %v, want a ValidationError", err)
	}
	return ve.Problems
}

func TestBidirectionalPolicy(t *testing.T) {
	policy := func(extra string) string {
		return "state: file:///state\npolicies:\n  - name: p\n    source: file:///src\n    mode: bidirectional\n" + extra
	}
	one := "    destinations: [{name: b, url: \"gs://bucket/b\"}]\n"
	if problems := parseProblems(t, policy(one)); problems != nil {
		t.Fatalf("a bidirectional policy with one destination refused: %v", problems)
	}
	f, err := Parse(strings.NewReader(policy(one)))
	if err != nil || f.Policies[0].Conflict != ConflictKeepBoth {
		t.Fatalf("default conflict rule = %q, %v; want keep-both (no edit is lost)", f.Policies[0].Conflict, err)
	}
	for _, rule := range []string{"newer-wins", "prefer-a", "prefer-b", "keep-both"} {
		if problems := parseProblems(t, policy(one+"    conflict: "+rule+"\n")); problems != nil {
			t.Errorf("conflict %s refused: %v", rule, problems)
		}
	}
	for _, c := range []struct{ extra, path, words string }{
		{one + "    conflict: newest\n", "policies[0].conflict", "unknown conflict rule"},
		{"    destinations: [{name: b, url: \"gs://bucket/b\"}, {name: c, url: \"gs://bucket/c\"}]\n", "policies[0].destinations", "2 destinations"},
		{one + "    rules: [{match: \"**\", to: [b]}]\n", "policies[0].rules", "every selected key"},
	} {
		problems := parseProblems(t, policy(c.extra))
		if len(problems) != 1 || problems[0].Path != c.path || !strings.Contains(problems[0].Message, c.words) {
			t.Errorf("%q: problems = %v; want one on %s saying %q", c.extra, problems, c.path, c.words)
		}
	}
	problems := parseProblems(t, "state: file:///state\npolicies: [{name: p, source: file:///src, destinations: [{name: b, url: \"gs://bucket/b\"}], conflict: prefer-a}]\n")
	if len(problems) != 1 || problems[0].Path != "policies[0].conflict" {
		t.Errorf("conflict on a copy policy: problems = %v; want one on the conflict", problems)
	}
}

func TestServerSideEncryptionOnlyWhereItApplies(t *testing.T) {
	for _, c := range []struct {
		name, dest string
		want       []string // substrings of the only problem; nil for a valid config
	}{
		{"s3 aws:kms", `{name: s3, url: "s3://b/p", sse: aws:kms, sse_kms_key_id: alias/k}`, nil},
		{"s3 dsse", `{name: s3, url: "s3://b/p", sse: "aws:kms:dsse"}`, nil},
		{"s3 AES256", `{name: s3, url: "s3://b/p", sse: AES256}`, nil},
		{"azure sse", `{name: azure-we, url: "azblob://acct/c/p", sse: AES256}`,
			[]string{"policies[0].destinations[0].sse:", "destination azure-we", "encrypts", "default encryption scope"}},
		{"azure kms key", `{name: azure-we, url: "azblob://acct/c/p", sse_kms_key_id: k}`,
			[]string{"policies[0].destinations[0].sse_kms_key_id:", "destination azure-we", "not supported"}},
		{"gcs sse", `{name: gcs, url: "gs://b/p", sse: aws:kms}`,
			[]string{"policies[0].destinations[0].sse:", "destination gcs", "not supported"}},
		{"gcs cmek", `{name: gcs, url: "gs://b/p", sse_kms_key_id: projects/p/locations/eu/keyRings/r/cryptoKeys/k}`, nil},
		{"gcs key not a cloud kms key", `{name: gcs, url: "gs://b/p", sse_kms_key_id: alias/k}`,
			[]string{"policies[0].destinations[0].sse_kms_key_id:", "destination gcs", "projects/P/locations/L/keyRings/R/cryptoKeys/K"}},
		{"directory sse", `{name: dir, url: "file:///dst", sse: AES256}`,
			[]string{"policies[0].destinations[0].sse:", "destination dir"}},
		{"s3 key without kms", `{name: s3, url: "s3://b/p", sse: AES256, sse_kms_key_id: k}`,
			[]string{"policies[0].destinations[0].sse_kms_key_id:", "aws:kms"}},
	} {
		wantOneProblem(t, c.name, "state: file:///state\npolicies: [{name: p, source: file:///src, destinations: ["+c.dest+"]}]\n", c.want)
	}
}

// wantOneProblem parses cfg and expects it accepted (want nil) or refused with one
// problem whose text holds every string of want.
func wantOneProblem(t *testing.T, name, cfg string, want []string) []Problem {
	t.Helper()
	problems := parseProblems(t, cfg)
	if want == nil {
		if problems != nil {
			t.Errorf("%s: refused: %v", name, problems)
		}
		return nil
	}
	if len(problems) != 1 {
		t.Errorf("%s: problems = %v, want one", name, problems)
		return nil
	}
	for _, w := range want {
		if !strings.Contains(problems[0].String(), w) {
			t.Errorf("%s: %q lacks %q", name, problems[0], w)
		}
	}
	return problems
}

// fakeAccessKeyID has the shape of an AWS access key ID (the AKIA prefix the check
// looks for) and is built here so that no key-shaped literal sits in the source.
var fakeAccessKeyID = "AKIA" + strings.Repeat("T", 16)

func TestCredentialsInURLsAreRefused(t *testing.T) {
	const secret = "Zx9SECRETVALUEq7"
	for _, c := range []struct {
		name    string
		field   string // state, source or destination
		url     string
		path    string // the problem's field path
		what    string // what the message says is carried
		useInst string // the credential reference the hint names
	}{
		{"azure sas sig", "destination", "azblob://acct/c/p?sv=2024-01-01&sig=" + secret, "policies[0].destinations[0].url", "Azure SAS token", "credentials: {azure_connection_string_env"},
		{"azure sas without sig", "destination", "azblob://acct/c/p?se=2030-01-01&sp=rw&skoid=" + secret, "policies[0].destinations[0].url", "Azure SAS token", "azure_connection_string_env"},
		{"gcs access token", "source", "gs://bucket/p?access_token=" + secret, "policies[0].source", "GCS OAuth access token", "source_credentials: {gcp_credentials_file"},
		{"aws session token", "destination", "s3://bucket/p?region=eu-west-1&X-Amz-Security-Token=" + secret, "policies[0].destinations[0].url", "AWS session token", "aws_profile"},
		{"aws presign credential", "destination", "s3://bucket/p?x-amz-credential=" + secret, "policies[0].destinations[0].url", "AWS presigned-URL credential", "aws_profile"},
		{"aws presign signature", "state", "s3://bucket/state?X-Amz-Signature=" + secret, "state", "AWS presigned-URL signature", "state_credentials: {aws_profile"},
		{"aws key in userinfo", "destination", "s3://" + fakeAccessKeyID + ":" + secret + "@bucket/p", "policies[0].destinations[0].url", "AWS access key", "aws_profile"},
		{"password in userinfo", "state", "gs://user:" + secret + "@bucket/p", "state", "password", "gcp_credentials_file"},
		{"user only", "source", "s3://" + secret + "@bucket/p", "policies[0].source", "user name", "aws_profile"},
		{"sas inside endpoint", "destination", "azblob://acct/c/p?endpoint=" + "https%3A%2F%2Facct.blob.example%2F%3Fsig%3D" + secret, "policies[0].destinations[0].url", "Azure SAS token (parameter sig) in its endpoint parameter", "azure_connection_string_env"},
		{"password inside endpoint", "destination", "s3://bucket/p?endpoint=" + "http%3A%2F%2Fminio%3A" + secret + "%40127.0.0.1%3A9000", "policies[0].destinations[0].url", "password in the user information in its endpoint parameter", "aws_profile"},
	} {
		state, source, dest := "file:///state", "file:///src", "file:///dst"
		switch c.field {
		case "state":
			state = c.url
		case "source":
			source = c.url
		default:
			dest = c.url
		}
		problems := parseProblems(t, "state: \""+state+"\"\npolicies: [{name: p, source: \""+source+"\", destinations: [{name: dst, url: \""+dest+"\"}]}]\n")
		if len(problems) != 1 {
			t.Errorf("%s: problems = %v, want one", c.name, problems)
			continue
		}
		p := problems[0]
		msg := p.String()
		if p.Path != c.path {
			t.Errorf("%s: problem on %q, want %q", c.name, p.Path, c.path)
		}
		if !strings.Contains(p.Message, c.what) || !strings.Contains(p.Hint, c.useInst) || !strings.Contains(p.Hint, "credentials never go in URLs") {
			t.Errorf("%s: %q: want it to say it carries %q, name the policy and the reference %q", c.name, msg, c.what, c.useInst)
		}
		if c.field == "destination" && !strings.Contains(p.Message, "destination dst") {
			t.Errorf("%s: %q does not name the destination", c.name, msg)
		}
		if strings.Contains(msg, secret) || strings.Contains(msg, "?") || strings.Contains(msg, "@") {
			t.Errorf("%s: the message shows the URL's query or user information: %q", c.name, msg)
		}
	}
}

func TestURLsWithoutCredentialsAreAccepted(t *testing.T) {
	for _, u := range []string{
		"s3://bucket/p?region=eu-west-1&endpoint=http%3A%2F%2F127.0.0.1%3A9000&path_style=true",
		"azblob://devstoreaccount1/c/p?endpoint=http%3A%2F%2F127.0.0.1%3A10000%2Fdevstoreaccount1",
		"gs://bucket/p?endpoint=http://127.0.0.1:4443",
	} {
		if problems := parseProblems(t, "state: file:///state\npolicies: [{name: p, source: file:///src, destinations: [{name: d, url: \""+u+"\"}]}]\n"); problems != nil {
			t.Errorf("%s refused: %v", u, problems)
		}
	}
}

// TestMessagesQuoteURLsRedacted covers the other messages that quote a location URL:
// they must not leak a query or user information either, whatever else is wrong.
func TestMessagesQuoteURLsRedacted(t *testing.T) {
	const secret = "Qw3SECRETh1dden"
	_, err := Parse(strings.NewReader(`
state: "ftp://u:` + secret + `@host/x?sig=` + secret + `"
policies:
  - name: p
    source: "file://host/rel?token=` + secret + `"
    destinations:
      - {name: a, url: "s3://?X-Amz-Signature=` + secret + `"}
      - {name: b, url: "azblob://acct?sig=` + secret + `"}
      - {name: c, url: "s3://b/p\x7f` + secret + `"}
      - {name: d, url: "s3://b/p?endpoint=%zz` + secret + `"}
      - {name: e, url: "s3://b/p?endpoint=http://[::1` + secret + `"}
`))
	if err == nil {
		t.Fatal("invalid config accepted")
	}
	msg := err.Error()
	for _, w := range []string{
		`state: unsupported scheme "ftp" in ftp://host/x`,
		"policies[0].destinations[0].url: s3:// lacks the bucket",
		"policies[0].destinations[1].url: azblob://acct lacks the account or the container",
		"policies[0].destinations[2].url: the URL of destination c is not a URL",
		"policies[0].source: file://host/rel is not an absolute file URL",
		"policies[0].destinations[3].url: the query of the URL of destination d, s3://b/p, is malformed",
		"policies[0].destinations[4].url: the endpoint parameter in the URL of destination e, s3://b/p, is not a URL",
	} {
		if !strings.Contains(msg, w) {
			t.Errorf("missing %q in:\n%s", w, msg)
		}
	}
	if strings.Contains(msg, secret) {
		t.Errorf("a secret reached the message:\n%s", msg)
	}
}

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"s3://AKIA:pw@bucket/p/q?X-Amz-Signature=x#frag": "s3://bucket/p/q",
		"file:///var/lib/replicator":                     "file:///var/lib/replicator",
		"azblob://acct/c?sig=x":                          "azblob://acct/c",
		"mailto:someone@example.com":                     "mailto:(not shown)",
		"s3://b/\x7f":                                    "(unparseable URL, not shown)",
	} {
		if got := redact(in); got != want {
			t.Errorf("redact(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestEventsOut(t *testing.T) {
	for _, c := range []struct {
		name, sinks string
		want        []string // nil: accepted
	}{
		{"https with a secret variable", `[{url: "https://hooks.example.com/r", secret_env: HOOK_SECRET}]`, nil},
		{"http on loopback", `[{url: "http://127.0.0.1:8080/events"}]`, nil},
		{"no url", `[{secret_env: X}]`, []string{"policies[0].events_out[0].url:", "is required"}},
		{"another scheme", `[{url: "ftp://host/x"}]`, []string{"events_out[0].url:", "not an http or https URL"}},
		{"no host", `[{url: "https:///x"}]`, []string{"events_out[0].url:", "with a host"}},
		{"password in the url", `[{url: "https://u:hunter2secret@host/x"}]`, []string{"events_out[0].url:", "password", "secret_env"}},
		{"bad variable name", `[{url: "https://host/x", secret_env: "MY-SECRET"}]`, []string{"events_out[0].secret_env:", "not a variable name"}},
	} {
		problems := wantOneProblem(t, c.name, "state: file:///state\npolicies: [{name: p, source: file:///src, destinations: [{name: d, url: \"file:///dst\"}], events_out: "+c.sinks+"}]\n", c.want)
		for _, p := range problems {
			if strings.Contains(p.String(), "hunter2secret") {
				t.Errorf("%s: the message shows the secret: %q", c.name, p)
			}
		}
	}
}

func TestWatchSettings(t *testing.T) {
	for _, c := range []struct {
		name, source, watch string
		want                []string // nil: accepted
	}{
		{"auto on a directory", "file:///src", "{mode: auto}", nil},
		{"poll with an interval", "file:///src", "{mode: poll, poll_interval: 10s, debounce: 1s}", nil},
		{"unknown mode", "file:///src", "{mode: fanotify}", []string{"policies[0].watch.mode:", "inotify, poll or auto"}},
		{"a bucket source", "s3://bucket/p", "{mode: poll}", []string{"policies[0].watch:", "not a directory"}},
	} {
		wantOneProblem(t, c.name, "state: file:///state\npolicies: [{name: p, source: \""+c.source+"\", destinations: [{name: d, url: \"file:///dst\"}], watch: "+c.watch+"}]\n", c.want)
	}
	f, err := Parse(strings.NewReader("state: file:///state\npolicies: [{name: p, source: file:///src, destinations: [{name: d, url: \"file:///dst\"}], watch: {}}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if w := f.Policies[0].Watch; w.Mode != WatchAuto || w.Debounce != Duration(2*time.Second) || w.PollInterval != Duration(30*time.Second) {
		t.Errorf("defaults %+v", w)
	}
}
