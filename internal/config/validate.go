package config

import (
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"

	"github.com/bmatcuk/doublestar/v4"
)

// Problem is one thing wrong in a config, located by its field path.
type Problem struct {
	// Path is the field, like policies[0].rules[1].to[0].
	Path string
	// Message says what is wrong.
	Message string
	// Hint says how to fix it.
	Hint string
}

func (p Problem) String() string {
	s := p.Path + ": " + p.Message
	if p.Path == "" {
		s = p.Message
	}
	if p.Hint != "" {
		s += " (" + p.Hint + ")"
	}
	return s
}

// ValidationError lists every problem of a config.
type ValidationError struct {
	// Problems in file order.
	Problems []Problem
}

func (e *ValidationError) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = "  - " + p.String()
	}
	return fmt.Sprintf("%d problem(s) in the config:\n%s", len(e.Problems), strings.Join(lines, "\n"))
}

// nameRE keeps names safe in workflow IDs, task queues and metric labels.
var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,62}$`)

var schemes = map[string]string{"file": "file:///abs/path", "s3": "s3://bucket/prefix", "gs": "gs://bucket/prefix", "azblob": "azblob://account/container/prefix"}

type checker struct{ problems []Problem }

func (c *checker) add(path, hint, format string, args ...any) {
	c.problems = append(c.problems, Problem{Path: path, Message: fmt.Sprintf(format, args...), Hint: hint})
}

// location checks a location URL. where names it for people ("the state", "the source",
// "destination aws-eu") and credField is the config field that references its secret
// ("state_credentials", "source_credentials", "credentials"). Messages quote the URL
// redacted: a URL that carries a secret is refused, and must not leak it doing so.
func (c *checker) location(path, where, credField, raw string) {
	if raw == "" {
		c.add(path, "a URL such as file:///mnt/share or s3://bucket/prefix", "is required")
		return
	}
	u, err := url.Parse(raw)
	if err != nil {
		c.add(path, "write a URL such as s3://bucket/prefix", "the URL of %s is not a URL (%s; its text is not shown, it could hold a secret)", where, parseError(err))
		return
	}
	shown := redactURL(u)
	form, ok := schemes[u.Scheme]
	if !ok {
		c.add(path, "supported: file://, s3://, gs://, azblob://", "unsupported scheme %q in %s", u.Scheme, shown)
		return
	}
	if what, found := secretInURL(u, 0); found {
		c.add(path, fmt.Sprintf("credentials never go in URLs, where they would reach workflow histories and logs: remove it and reference the secret with %s: {%s: …}", credField, credentialRef(u.Scheme)),
			"the URL of %s, %s, carries %s", where, shown, what)
	}
	if _, err := url.ParseQuery(u.RawQuery); err != nil {
		// url.URL.Query drops malformed pairs without a word, and so would the
		// drivers: a parameter would be silently ignored. The error is not quoted
		// because it repeats part of the query.
		c.add(path, "escape '%' as %25 and write parameters as name=value joined by '&'", "the query of the URL of %s, %s, is malformed (its text is not shown)", where, shown)
	}
	for _, ep := range u.Query()["endpoint"] {
		if _, err := url.Parse(ep); err != nil {
			c.add(path, "write the endpoint as a URL such as https://host:port", "the endpoint parameter in the URL of %s, %s, is not a URL (%s; its text is not shown)", where, shown, parseError(err))
		}
	}
	switch u.Scheme {
	case "file":
		if u.Host != "" || !strings.HasPrefix(u.Path, "/") {
			c.add(path, "write "+form, "%s is not an absolute file URL", shown)
		}
	case "azblob":
		if u.Host == "" || strings.Trim(u.Path, "/") == "" {
			c.add(path, "write "+form, "%s lacks the account or the container", shown)
		}
	default:
		if u.Host == "" {
			c.add(path, "write "+form, "%s lacks the bucket", shown)
		}
	}
}

func (c *checker) glob(path, pattern string) {
	if pattern == "" {
		c.add(path, `for example "customers/nl/**" or "**/*.pdf"`, "empty pattern")
	} else if !doublestar.ValidatePattern(pattern) {
		c.add(path, `globs use *, ?, [a-z], {a,b} and ** for any depth`, "invalid pattern %q", pattern)
	}
}

// Validate checks the whole config and returns a *ValidationError listing every
// problem, or nil.
func (f *File) Validate() error {
	c := &checker{}
	if f.State == "" {
		c.add("state", "a directory or bucket for plans, manifests and dead letters, e.g. file:///var/lib/replicator", "is required")
	} else {
		c.location("state", "the state", "state_credentials", f.State)
	}
	if len(f.Policies) == 0 {
		c.add("policies", "add at least one policy", "no policies")
	}
	seen := map[string]int{}
	for i := range f.Policies {
		p := &f.Policies[i]
		at := fmt.Sprintf("policies[%d]", i)
		if !nameRE.MatchString(p.Name) {
			c.add(at+".name", "lower-case letters, digits, '-', '_' and '.', up to 63 characters", "invalid policy name %q", p.Name)
		}
		if j, dup := seen[p.Name]; dup {
			c.add(at+".name", fmt.Sprintf("policies[%d] has the same name", j), "duplicate policy name %q", p.Name)
		}
		seen[p.Name] = i
		c.policy(at, p)
	}
	if len(c.problems) > 0 {
		return &ValidationError{Problems: c.problems}
	}
	return nil
}

func (c *checker) policy(at string, p *Policy) {
	c.location(at+".source", "the source", "source_credentials", p.Source)
	if len(p.Destinations) == 0 {
		c.add(at+".destinations", "add at least one destination with a name and a url", "no destinations")
	}
	names := map[string]int{}
	for i, d := range p.Destinations {
		dat := fmt.Sprintf("%s.destinations[%d]", at, i)
		if !nameRE.MatchString(d.Name) {
			c.add(dat+".name", "lower-case letters, digits, '-', '_' and '.', up to 63 characters", "invalid destination name %q", d.Name)
		}
		if j, dup := names[d.Name]; dup {
			c.add(dat+".name", fmt.Sprintf("%s.destinations[%d] has the same name", at, j), "duplicate destination name %q", d.Name)
		}
		names[d.Name] = i
		c.location(dat+".url", "destination "+d.Name, "credentials", d.URL)
		if d.URL != "" && d.URL == p.Source {
			c.add(dat+".url", "a destination must differ from the source", "is the policy's source")
		}
		c.encryption(dat, d)
		if d.Limits != nil {
			c.limits(dat+".limits", *d.Limits)
		}
		c.tuning(dat+".tuning", d)
	}
	catchAll := -1
	for i, r := range p.Rules {
		rat := fmt.Sprintf("%s.rules[%d]", at, i)
		c.glob(rat+".match", r.Match)
		if catchAll >= 0 {
			c.add(rat, fmt.Sprintf("rules[%d] (%q) matches every key first; move this rule above it", catchAll, p.Rules[catchAll].Match), "rule %q can never match", r.Match)
		}
		if r.Match == "**" && catchAll < 0 {
			catchAll = i
		}
		if len(r.To) == 0 {
			c.add(rat+".to", "name one or more destinations of this policy", "routes to no destination")
		}
		for j, to := range r.To {
			if _, ok := names[to]; !ok {
				c.add(fmt.Sprintf("%s.to[%d]", rat, j), fmt.Sprintf("destinations of policy %s: %v", p.Name, destinationNames(p)), "unknown destination %q", to)
			}
		}
		if slices.ContainsFunc(p.Exclude, func(x string) bool { return x == r.Match || x == "**" }) {
			c.add(rat+".match", "every key it matches is excluded", "rule %q matches nothing", r.Match)
		}
	}
	for i, g := range p.Include {
		c.glob(fmt.Sprintf("%s.include[%d]", at, i), g)
	}
	for i, g := range p.Exclude {
		c.glob(fmt.Sprintf("%s.exclude[%d]", at, i), g)
	}
	switch p.Mode {
	case ModeCopy, ModeMirror:
		if p.Conflict != "" {
			c.add(at+".conflict", "remove it, or use mode: bidirectional", "a conflict rule only applies to a bidirectional policy (mode is %s)", p.Mode)
		}
	case ModeBidirectional:
		c.bidirectional(at, p)
	default:
		c.add(at+".mode", "copy, mirror or bidirectional", "unknown mode %q", p.Mode)
	}
	switch p.Consistency {
	case ConsistencyAtomic, ConsistencyEventual:
	default:
		c.add(at+".consistency", "atomic or eventual", "unknown consistency %q", p.Consistency)
	}
	c.limits(at+".limits", p.Limits)
	if p.Safety.MaxDelete < 0 || p.Safety.MaxDeletePercent < 0 || p.Safety.MaxDeletePercent > 100 {
		c.add(at+".safety", "max_delete is a count, max_delete_percent between 0 and 100", "out of range")
	}
	if p.Unmanaged != "overwrite" && p.Unmanaged != "leave" {
		c.add(at+".unmanaged", "overwrite or leave", "unknown value %q", p.Unmanaged)
	}
	if p.Retry.MaxAttempts < 0 {
		c.add(at+".retry.max_attempts", "a positive count", "negative")
	}
	if p.Schedule.Every != 0 && len(p.Schedule.Calendar) > 0 {
		c.add(at+".schedule", "use either every or calendar", "both every and calendar are set")
	}
	for i, sink := range p.EventsOut {
		c.eventSink(fmt.Sprintf("%s.events_out[%d]", at, i), sink)
	}
	if w := p.Watch; w != nil {
		switch w.Mode {
		case WatchInotify, WatchPoll, WatchAuto, "":
		default:
			c.add(at+".watch.mode", "inotify, poll or auto", "unknown mode %q", w.Mode)
		}
		if !strings.HasPrefix(p.Source, "file://") {
			c.add(at+".watch", "only a directory source (file://) is watched; remove watch, and a bucket source is kept in step by the scheduled reconcile", "the source is not a directory")
		}
		if w.Debounce < 0 || w.PollInterval < 0 {
			c.add(at+".watch", "durations such as 2s or 1m", "negative duration")
		}
	}
}

// envNameRE is the form of an environment variable name.
var envNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// eventSink checks one events_out entry: an http(s) URL without a secret in it, and
// the name of the variable that holds the signing secret.
func (c *checker) eventSink(at string, sink EventSink) {
	u, err := url.Parse(sink.URL)
	switch {
	case sink.URL == "":
		c.add(at+".url", "the URL events are POSTed to, such as https://hooks.example.com/replicator", "is required")
	case err != nil:
		c.add(at+".url", "write a URL such as https://hooks.example.com/replicator", "is not a URL (%s; its text is not shown, it could hold a secret)", parseError(err))
	case u.Scheme != "http" && u.Scheme != "https" || u.Host == "":
		c.add(at+".url", "write a URL such as https://hooks.example.com/replicator", "%s is not an http or https URL with a host", redactURL(u))
	default:
		if what, found := secretInURL(u, 0); found {
			c.add(at+".url", "secrets never go in URLs, where they would reach workflow histories and logs: put it in an environment variable and name it with secret_env",
				"the URL %s carries %s", redactURL(u), what)
		}
	}
	if sink.SecretEnv != "" && !envNameRE.MatchString(sink.SecretEnv) {
		c.add(at+".secret_env", "the name of an environment variable, such as REPLICATOR_EVENTS_SECRET", "%q is not a variable name", sink.SecretEnv)
	}
}

// cloudKMSKey is the form of a Cloud KMS key name.
var cloudKMSKey = regexp.MustCompile(`^projects/[^/]+/locations/[^/]+/keyRings/[^/]+/cryptoKeys/[^/]+$`)

// encryption checks a destination's server-side encryption: S3 takes sse and a KMS
// key, GCS a KMS key (CMEK), and a
// setting a driver would ignore is refused so nobody believes data is encrypted with a
// key it is not.
func (c *checker) encryption(dat string, d Destination) {
	scheme, _, _ := strings.Cut(d.URL, "://")
	fields := []struct{ name, value string }{{"sse", d.SSE}, {"sse_kms_key_id", d.SSEKMSKeyID}}
	for _, f := range fields {
		if f.value == "" {
			continue
		}
		switch scheme {
		case "azblob":
			c.add(dat+"."+f.name, "Azure Storage always encrypts blobs at rest; for a customer-managed key give the container a default encryption scope that requests cannot override (deploy/terraform's azure-destination module: encryption_key_vault_key_id), which covers server-side copies too, and remove "+f.name,
				"%s on Azure destination %s is not supported", f.name, d.Name)
		case "gs":
			// Cloud Storage encrypts every object; a customer-managed key (CMEK) is
			// chosen with sse_kms_key_id alone, which the driver checks and sends.
			if f.name == "sse" {
				c.add(dat+".sse", "Cloud Storage always encrypts objects at rest: remove sse, and set sse_kms_key_id to a Cloud KMS key (projects/P/locations/L/keyRings/R/cryptoKeys/K) for a customer-managed key",
					"sse on GCS destination %s is not supported", d.Name)
			} else if !cloudKMSKey.MatchString(f.value) {
				c.add(dat+".sse_kms_key_id", "a Cloud KMS key name: projects/P/locations/L/keyRings/R/cryptoKeys/K",
					"sse_kms_key_id %q of GCS destination %s is not a Cloud KMS key", f.value, d.Name)
			}
		case "file":
			c.add(dat+"."+f.name, "a directory has no server-side encryption: remove "+f.name+" (encrypt the file system instead)",
				"%s on directory destination %s is not supported", f.name, d.Name)
		}
	}
	if scheme != "s3" {
		return
	}
	kms := d.SSE == "aws:kms" || d.SSE == "aws:kms:dsse"
	if d.SSE != "" && d.SSE != "AES256" && !kms {
		c.add(dat+".sse", "AES256, aws:kms or aws:kms:dsse", "unknown server-side encryption %q", d.SSE)
	}
	if d.SSEKMSKeyID != "" && !kms {
		c.add(dat+".sse_kms_key_id", "set sse: aws:kms (or aws:kms:dsse) as well, or remove sse_kms_key_id", "a KMS key without sse aws:kms is refused by S3")
	}
}

func (c *checker) limits(at string, l Limits) {
	if l.Concurrency < 0 || l.Concurrency > 1024 {
		c.add(at+".concurrency", "between 1 and 1024", "concurrency %d out of range", l.Concurrency)
	}
}

func (c *checker) tuning(at string, d Destination) {
	t := d.Tuning
	if t.PartSize < 0 || t.PartSize > 1<<30 {
		c.add(at+".part_size", "at most 1GiB (each part is held in memory)", "part size %d out of range", t.PartSize)
	}
	if t.Threshold < 0 || t.Threshold > 1<<30 {
		c.add(at+".threshold", "at most 1GiB (objects up to it are held in memory)", "threshold %d out of range", t.Threshold)
	}
	if t.Concurrency < 0 || t.Concurrency > 64 {
		c.add(at+".concurrency", "between 1 and 64 parts in flight per object", "concurrency %d out of range", t.Concurrency)
	}
	if t.SingleRequest && !strings.HasPrefix(d.URL, "gs://") {
		c.add(at+".single_request", "only gs:// destinations have resumable uploads to turn off; remove it", "single_request on a non-GCS destination")
	}
}

func destinationNames(p *Policy) []string {
	names := make([]string, len(p.Destinations))
	for i, d := range p.Destinations {
		names[i] = d.Name
	}
	return names
}

// bidirectional checks what a bidirectional policy needs: one destination (side B)
// that every key goes to, and a known conflict rule.
func (c *checker) bidirectional(at string, p *Policy) {
	if len(p.Destinations) != 1 {
		c.add(at+".destinations", "list exactly one destination: the source is side A, the destination side B", "a bidirectional policy syncs two locations, %d destinations given", len(p.Destinations))
	}
	if len(p.Rules) > 0 {
		c.add(at+".rules", "remove the rules (use include/exclude to choose keys)", "a bidirectional policy syncs every selected key between its two sides; rules route keys among several destinations")
	}
	switch p.Conflict {
	case ConflictNewerWins, ConflictPreferA, ConflictPreferB, ConflictKeepBoth:
	default:
		c.add(at+".conflict", "newer-wins, prefer-a, prefer-b or keep-both", "unknown conflict rule %q", p.Conflict)
	}
	if p.Watch != nil {
		c.add(at+".watch", "remove it: the scheduled reconcile syncs both sides", "a bidirectional policy cannot be watched (a watch sees one side only)")
	}
}
