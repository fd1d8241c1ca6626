// Package config reads and validates replicator.yaml (DESIGN section 7a): the state
// location and the policies, each with a source, named destinations, routing rules,
// filters, mode, consistency, schedule, safety and limits.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/cloudrepl/replicator/internal/store"
)

// EnvConfig is the environment variable naming the config file when --config is not
// given.
const EnvConfig = "REPLICATOR_CONFIG"

// DefaultPath is the config file used when neither --config nor $REPLICATOR_CONFIG is.
const DefaultPath = "replicator.yaml"

// Modes of a policy.
const (
	ModeCopy          = "copy"
	ModeMirror        = "mirror"
	ModeBidirectional = "bidirectional"
)

// OneWayRefusal is why a bidirectional policy refuses one-way replication of a key
// (starter replicate and batch, the ReplicateFile and ReplicateBatch workflows):
// a copy from side A could overwrite an edit on side B that no sync has seen yet.
func (p *Policy) OneWayRefusal() error {
	if p.Mode != ModeBidirectional {
		return nil
	}
	return fmt.Errorf("policy %s is bidirectional: its keys are synced both ways by its reconcile (starter reconcile --policy %s, or its schedule), never copied one way, which could overwrite an edit made on side B", p.Name, p.Name)
}

// Conflict rules of a bidirectional policy.
const (
	ConflictNewerWins = "newer-wins"
	ConflictPreferA   = "prefer-a"
	ConflictPreferB   = "prefer-b"
	ConflictKeepBoth  = "keep-both"
)

// Consistency modes of a policy.
const (
	ConsistencyAtomic   = "atomic"
	ConsistencyEventual = "eventual"
)

// File is the whole config file.
type File struct {
	// State is the location (directory or bucket URL) of plans, manifests, dead
	// letters and the hash cache.
	State string `yaml:"state"`
	// StateCredentials reference the state location's secret, if it needs one.
	StateCredentials store.Credentials `yaml:"state_credentials"`
	// Policies, each with a unique name.
	Policies []Policy `yaml:"policies"`
}

// Policy says which files go where, and how.
type Policy struct {
	// Name appears in workflow IDs, search attributes and metrics.
	Name string `yaml:"name"`
	// Source is the location files come from.
	Source string `yaml:"source"`
	// SourceCredentials reference the source's secret.
	SourceCredentials store.Credentials `yaml:"source_credentials"`
	// Destinations, each with a unique name.
	Destinations []Destination `yaml:"destinations"`
	// Rules route keys to destinations; the first match wins; without rules every
	// key goes to every destination.
	Rules []Rule `yaml:"rules"`
	// Include, when set, keeps only keys matching one of its globs.
	Include []string `yaml:"include"`
	// Exclude drops keys matching any of its globs.
	Exclude []string `yaml:"exclude"`
	// Mode is copy (never delete), mirror (propagate deletes) or bidirectional.
	Mode string `yaml:"mode"`
	// Consistency is atomic (all routed destinations or none) or eventual.
	Consistency string `yaml:"consistency"`
	// Conflict is the rule of a bidirectional policy for a key changed on both sides
	// concurrently: newer-wins, prefer-a, prefer-b or keep-both (the default: no
	// edit is ever lost).
	Conflict string `yaml:"conflict"`
	// Schedule of the reconcile.
	Schedule Schedule `yaml:"schedule"`
	// Safety limits deletes.
	Safety Safety `yaml:"safety"`
	// Unmanaged says what a reconcile does with a destination object the replicator
	// did not write whose content differs from the source: overwrite (default) or
	// leave. One with the same content is adopted either way.
	Unmanaged string `yaml:"unmanaged"`
	// Checksum makes every reconcile compare content (SHA-256) instead of trusting
	// versions and ETags.
	Checksum bool `yaml:"checksum"`
	// Limits bound the work per destination.
	Limits Limits `yaml:"limits"`
	// Retry says how long transient failures are retried before a replication is a
	// dead letter.
	Retry Retry `yaml:"retry"`
	// EventsOut are HTTP endpoints that receive a CloudEvents event for each key a
	// run replicated and each dead letter.
	EventsOut []EventSink `yaml:"events_out"`
	// Watch, for a directory source, makes a worker started with --watch trigger
	// replication as files change instead of waiting for the reconcile.
	Watch *Watch `yaml:"watch"`
	// PrivateKeys keeps the policy's keys out of what the payload codec cannot
	// encrypt: workflow IDs are named by an HMAC of the key (REPLICATOR_ID_KEY) and
	// the ReplicationKey search attribute is left out. It needs the codec, which
	// encrypts everything else the workflows carry.
	PrivateKeys bool `yaml:"private_keys"`
}

// Watch modes.
const (
	WatchInotify = "inotify"
	WatchPoll    = "poll"
	WatchAuto    = "auto"
)

// Watch says how a policy's source directory is watched.
type Watch struct {
	// Mode is inotify (kernel events; only this machine's changes), poll (rescans,
	// for NFS and CephFS, whose other clients' changes inotify never sees) or auto
	// (poll on network file systems, else inotify).
	Mode string `yaml:"mode"`
	// Debounce is how long a file must go without a change before it is replicated:
	// a file still being written is not copied half-way. Default 2s.
	Debounce Duration `yaml:"debounce"`
	// PollInterval is the time between rescans in poll mode. Default 30s.
	PollInterval Duration `yaml:"poll_interval"`
}

// EventSink is one receiver of outbound events.
type EventSink struct {
	// URL is where events are POSTed (http or https).
	URL string `yaml:"url"`
	// SecretEnv, when set, names the environment variable holding the shared secret
	// with which each event body is signed (HMAC-SHA256).
	SecretEnv string `yaml:"secret_env"`
}

// Destination is one named target.
type Destination struct {
	// Name is unique within the policy.
	Name string `yaml:"name"`
	// URL of the target location.
	URL string `yaml:"url"`
	// Credentials reference the target's secret.
	Credentials store.Credentials `yaml:"credentials"`
	// StorageClass of new objects (S3/GCS class, Azure access tier).
	StorageClass string `yaml:"storage_class"`
	// SSE is server-side encryption, S3 destinations only: AES256, aws:kms or
	// aws:kms:dsse (Azure and GCS always encrypt at rest with their own keys).
	SSE string `yaml:"sse"`
	// SSEKMSKeyID is the KMS key for aws:kms.
	SSEKMSKeyID string `yaml:"sse_kms_key_id"`
	// DedicatedQueue routes this destination's activities to the task queue
	// replication-<name>, so that workers close to its cloud serve it.
	DedicatedQueue bool `yaml:"dedicated_queue"`
	// Limits override the policy's limits for this destination.
	Limits *Limits `yaml:"limits"`
	// Tuning sets how bytes move to this destination; zero fields keep the
	// driver's defaults, which suit the real cloud services.
	Tuning Tuning `yaml:"tuning"`
}

// Tuning of a destination's uploads (store.Tuning, as written in the config).
type Tuning struct {
	// PartSize is the multipart part, resumable chunk or block size.
	PartSize ByteSize `yaml:"part_size"`
	// Threshold is the largest object sent in one buffered request.
	Threshold ByteSize `yaml:"threshold"`
	// Concurrency is the number of parts in flight for one object.
	Concurrency int `yaml:"concurrency"`
	// SingleRequest streams every object larger than Threshold in one request
	// instead of a resumable upload (GCS only): a failure restarts the object, but
	// servers that pay per chunk (fake-gcs-server rehashes the whole object on each
	// one) take it in one pass. fake-gcs-server also stores a request cut short, so
	// there a put refused mid-stream can leave the cut object; real GCS does not.
	SingleRequest bool `yaml:"single_request"`
}

// Store converts the tuning for the drivers.
func (t Tuning) Store() store.Tuning {
	return store.Tuning{PartSize: int64(t.PartSize), Threshold: int64(t.Threshold), Concurrency: t.Concurrency, SingleRequest: t.SingleRequest}
}

// Rule routes keys matching a glob ("**" crosses directories) to destinations.
type Rule struct {
	// Match is the glob.
	Match string `yaml:"match"`
	// To names destinations of the policy.
	To []string `yaml:"to"`
}

// Schedule of the reconcile: an interval or calendar expressions.
type Schedule struct {
	// Every is an interval such as 5m.
	Every Duration `yaml:"every"`
	// Calendar holds cron expressions ("0 2 * * *").
	Calendar []string `yaml:"calendar"`
	// CatchupWindow is how late a missed scheduled reconcile may still run.
	CatchupWindow Duration `yaml:"catchup_window"`
	// PauseOnFailure pauses the schedule when a reconcile fails.
	PauseOnFailure bool `yaml:"pause_on_failure"`
}

// Safety limits mirror deletes per run.
type Safety struct {
	// MaxDelete is the largest number of deletes one run may make.
	MaxDelete int `yaml:"max_delete"`
	// MaxDeletePercent is the largest share of a destination's objects one run may
	// delete.
	MaxDeletePercent float64 `yaml:"max_delete_percent"`
	// TrashRetention, when set, keeps deleted and overwritten objects under
	// .replicator/trash/<date>/ on their destination for this long instead of
	// destroying them.
	TrashRetention Duration `yaml:"trash_retention"`
}

// Limits bound transfers.
type Limits struct {
	// Bandwidth is in bytes per second per destination, written like 200MiB/s.
	Bandwidth ByteRate `yaml:"bandwidth"`
	// Concurrency is the number of transfers in flight per destination.
	Concurrency int `yaml:"concurrency"`
}

// Retry bounds the retries of transient failures.
type Retry struct {
	// MaxAttempts per activity; 0 means the default of 10.
	MaxAttempts int `yaml:"max_attempts"`
	// MaxInterval between attempts; default 1m.
	MaxInterval Duration `yaml:"max_interval"`
	// Expiration is how long one transfer is retried; default 1h.
	Expiration Duration `yaml:"expiration"`
	// HeartbeatTimeout is how long a transfer may go without a heartbeat before it
	// is retried on another worker; default 30s.
	HeartbeatTimeout Duration `yaml:"heartbeat_timeout"`
}

// Load reads the config from path, or from $REPLICATOR_CONFIG, or ./replicator.yaml.
func Load(path string) (*File, string, error) {
	if path == "" {
		path = os.Getenv(EnvConfig)
	}
	if path == "" {
		path = DefaultPath
	}
	b, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, path, fmt.Errorf("config file %s not found: pass --config, set $%s, or create ./%s", path, EnvConfig, DefaultPath)
		}
		return nil, path, fmt.Errorf("read config %s: %w", path, err)
	}
	f, err := Parse(bytes.NewReader(b))
	if err != nil {
		return nil, path, fmt.Errorf("config %s: %w", path, err)
	}
	return f, path, nil
}

// Parse decodes and validates a config, reporting every problem at once.
func Parse(r io.Reader) (*File, error) {
	dec := yaml.NewDecoder(r)
	dec.KnownFields(true)
	var f File
	if err := dec.Decode(&f); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &ValidationError{Problems: []Problem{{Path: "", Message: "the file is empty", Hint: "see the example in README.md"}}}
		}
		return nil, fmt.Errorf("decode YAML: %w (field names are listed in README.md)", err)
	}
	f.applyDefaults()
	if err := f.Validate(); err != nil {
		return nil, err
	}
	return &f, nil
}

func (f *File) applyDefaults() {
	for i := range f.Policies {
		p := &f.Policies[i]
		if p.Mode == "" {
			p.Mode = ModeCopy
		}
		if p.Mode == ModeBidirectional && p.Conflict == "" {
			p.Conflict = ConflictKeepBoth
		}
		if p.Consistency == "" {
			p.Consistency = ConsistencyEventual
		}
		if p.Retry.MaxAttempts == 0 {
			p.Retry.MaxAttempts = 10
		}
		if p.Retry.MaxInterval == 0 {
			p.Retry.MaxInterval = Duration(time.Minute)
		}
		if p.Retry.Expiration == 0 {
			p.Retry.Expiration = Duration(time.Hour)
		}
		if p.Safety.MaxDelete == 0 && p.Safety.MaxDeletePercent == 0 {
			p.Safety.MaxDelete, p.Safety.MaxDeletePercent = 1000, 10
		}
		if p.Unmanaged == "" {
			p.Unmanaged = "overwrite"
		}
		if p.Retry.HeartbeatTimeout == 0 {
			p.Retry.HeartbeatTimeout = Duration(30 * time.Second)
		}
		if p.Limits.Concurrency == 0 {
			p.Limits.Concurrency = 16
		}
		if w := p.Watch; w != nil {
			if w.Mode == "" {
				w.Mode = WatchAuto
			}
			if w.Debounce == 0 {
				w.Debounce = Duration(2 * time.Second)
			}
			if w.PollInterval == 0 {
				w.PollInterval = Duration(30 * time.Second)
			}
		}
	}
}

// Policy returns the named policy.
func (f *File) Policy(name string) (*Policy, error) {
	for i := range f.Policies {
		if f.Policies[i].Name == name {
			return &f.Policies[i], nil
		}
	}
	names := make([]string, len(f.Policies))
	for i, p := range f.Policies {
		names[i] = p.Name
	}
	return nil, fmt.Errorf("no policy named %q in the config (it has %v)", name, names)
}

// Destination returns the named destination of the policy.
func (p *Policy) Destination(name string) (*Destination, error) {
	for i := range p.Destinations {
		if p.Destinations[i].Name == name {
			return &p.Destinations[i], nil
		}
	}
	return nil, fmt.Errorf("policy %s has no destination %q", p.Name, name)
}

// LimitsFor returns the limits that apply to a destination.
func (p *Policy) LimitsFor(d *Destination) Limits {
	if d.Limits == nil {
		return p.Limits
	}
	l := *d.Limits
	if l.Concurrency == 0 {
		l.Concurrency = p.Limits.Concurrency
	}
	if l.Bandwidth == 0 {
		l.Bandwidth = p.Limits.Bandwidth
	}
	return l
}

// TaskQueue is the task queue of the destination's activities.
func (d *Destination) TaskQueue(defaultQueue string) string {
	if d.DedicatedQueue {
		return defaultQueue + "-" + d.Name
	}
	return defaultQueue
}
