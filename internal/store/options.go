package store

import (
	"fmt"
	"net/http"
	"net/url"
)

// Credentials name where a driver finds its secret; they never hold the secret itself
// (DESIGN section 7). With every field empty, each SDK's standard chain is used.
type Credentials struct {
	// AWSProfile is a profile of the shared AWS config and credentials files.
	AWSProfile string `yaml:"aws_profile,omitempty" json:"aws_profile,omitempty"`
	// GCPCredentialsFile is the path of a service-account or external-account JSON file.
	GCPCredentialsFile string `yaml:"gcp_credentials_file,omitempty" json:"gcp_credentials_file,omitempty"`
	// AzureConnectionStringEnv names the environment variable holding an Azure
	// Storage connection string.
	AzureConnectionStringEnv string `yaml:"azure_connection_string_env,omitempty" json:"azure_connection_string_env,omitempty"`
}

// Tuning sets how a driver moves bytes. Zero fields take the driver's defaults.
type Tuning struct {
	// PartSize is the size of one multipart part, resumable chunk or block.
	PartSize int64
	// Threshold is the largest object sent in one request; larger ones go in parts.
	Threshold int64
	// Concurrency is the number of parts in flight for one object.
	Concurrency int
	// CopyThreshold is the largest object copied server-side in one request (S3: 5 GiB
	// at most); larger ones are copied in parts of CopyPartSize.
	CopyThreshold int64
	// CopyPartSize is the part size of a multipart server-side copy.
	CopyPartSize int64
	// PageSize is the default number of entries per listing request.
	PageSize int
	// SingleRequest streams objects larger than Threshold in one request instead
	// of a resumable upload (GCS only; other drivers ignore it).
	SingleRequest bool
}

// Options are what every driver's constructor takes.
type Options struct {
	// Name of the store in messages: the destination's or source's name.
	Name string
	// URL is the location: file:///abs/path, s3://bucket/prefix?region=…&endpoint=…,
	// gs://bucket/prefix, azblob://account/container/prefix?endpoint=….
	URL *url.URL
	// Credentials reference the secret.
	Credentials Credentials
	// StorageClass for new objects (S3 and GCS class names, Azure access tier).
	StorageClass string
	// SSE asks for server-side encryption: on S3 "AES256" or "aws:kms".
	SSE string
	// SSEKMSKeyID is the KMS key for SSE aws:kms.
	SSEKMSKeyID string
	// Tuning sets part sizes and concurrency.
	Tuning Tuning
	// WrapTransport, when set, wraps the HTTP transport of the driver's client (for
	// example to count the requests a store makes); authentication stays the SDK's.
	WrapTransport func(http.RoundTripper) http.RoundTripper
}

// ConfigError reports a location or option a driver cannot use: CodePermission (a
// configuration problem), naming the store and what to fix.
func ConfigError(opts Options, hint, format string, args ...any) *Error {
	return &Error{Code: CodePermission, Op: "open", Store: opts.Name, Hint: hint, Err: fmt.Errorf(format, args...)}
}

// RejectUnknownQuery fails when the URL carries query parameters a driver does not
// know, so a typo never silently falls back to a default.
func RejectUnknownQuery(opts Options, known ...string) error {
	for k := range opts.URL.Query() {
		ok := false
		for _, want := range known {
			ok = ok || k == want
		}
		if !ok {
			return ConfigError(opts, fmt.Sprintf("known parameters for %s:// are %v", opts.URL.Scheme, known),
				"unknown URL parameter %q in %s", k, opts.URL.Redacted())
		}
	}
	return nil
}
