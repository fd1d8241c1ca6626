// Package azstore is the Azure Blob Storage driver: a store rooted at a container of
// one storage account plus an optional prefix, addressed as
//
//	azblob://ACCOUNT/CONTAINER[/PREFIX][?endpoint=SERVICE_URL]
//
// endpoint is the blob service URL (default https://ACCOUNT.blob.core.windows.net;
// http://127.0.0.1:10000/devstoreaccount1 for Azurite). Credentials come from the
// connection string in the environment variable that Credentials.AzureConnectionStringEnv
// names (shared key or SAS; with an endpoint in the URL, only the string's account name
// and key or SAS are used, so one account's key can target a private endpoint), or else
// from azidentity's DefaultAzureCredential (workload identity, managed identity, az
// login...). Two stores can therefore use two accounts.
//
// What Azure imposes, and how the driver copes:
//   - Metadata names must be C# identifiers: the replicator's own names travel with
//     '_' for '-' and are translated back on read; in user metadata names every
//     character other than ASCII letters, digits and '_' becomes '_' (a leading digit
//     gets a '_' in front), which is lossy: "eu-west" comes back as "eu_west".
//     Azure returns names in varied case; they are read case-insensitively.
//   - Metadata values must be printable ASCII: other values (and values holding "=?")
//     are stored as one RFC 2047 encoded word (=?UTF-8?B?...?=) and decoded on read.
//   - Path segments ending in '.' are refused (CodeInvalid): the service's URL
//     normalisation would silently strip the dot and store another name.
//   - Objects above the threshold are staged as blocks and committed with one
//     Put Block List carrying metadata, headers and the precondition. Nothing is
//     committed unless the stream's SHA-256 and size match; uncommitted blocks are
//     invisible and the service discards them (after a week, or at the blob's next
//     commit), so a failed upload leaves nothing to clean.
//   - Server-side copy is Copy Blob within the account, polled until it completes.
//     A copy that fails or is cancelled while pending is aborted and its
//     destination deleted, since Azure would keep a truncated blob with the
//     copied metadata.
//
// The SDK's own retry policy is kept short (see retryOptions): the activity layer
// retries transient errors itself, with its own backoff and visibility.
package azstore

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"

	"github.com/cloudrepl/replicator/internal/store"
)

// Defaults for the production tuning; Options.Tuning overrides each of them.
const (
	// DefaultPartSize is the block size of staged uploads. 16 MiB blocks keep the
	// request count low on real Azure and memory at (concurrency+1) blocks.
	DefaultPartSize = 16 << 20
	// DefaultThreshold is the largest object sent with one Put Blob.
	DefaultThreshold = 16 << 20
	// DefaultConcurrency is the number of blocks staged at once for one object.
	DefaultConcurrency = 4
	// DefaultPageSize is the number of entries asked per List Blobs request, Azure's
	// maximum: fewer round trips for a reconcile's listings.
	DefaultPageSize = 5000
)

// Service limits (https://learn.microsoft.com/rest/api/storageservices/put-block-list).
const (
	maxBlocks       = 50000
	maxBlockSize    = 4000 << 20
	maxPutBlobSize  = 5000 << 20
	maxListPageSize = 5000
)

type blobStore struct {
	name        string
	site        site
	prefix      string
	client      *container.Client
	tier        *blob.AccessTier
	partSize    int64
	threshold   int64
	concurrency int
	pageSize    int
}

// site is what error hints name: where the store points and which credential it uses.
type site struct {
	account   string
	container string
	endpoint  string
	// credential describes the credential for hints, e.g. "the connection string in
	// $AZURE_STORAGE_CONNECTION_STRING".
	credential string
	// connEnv is the connection string's environment variable, "" for the default chain.
	connEnv string
}

var (
	accountRE   = regexp.MustCompile(`^[a-z0-9]{3,24}$`)
	containerRE = regexp.MustCompile(`^(\$root|[a-z0-9](?:[a-z0-9]|-[a-z0-9]){2,62})$`)
)

// New returns the store for opts.URL (azblob://account/container/prefix?endpoint=…).
// It makes no request: Check verifies the location and credentials.
func New(ctx context.Context, opts store.Options) (store.Store, error) {
	_ = ctx // construction is offline; the context is kept for the drivers' common signature
	u := opts.URL
	if u == nil {
		return nil, store.ConfigError(opts, "give a URL azblob://account/container/prefix", "no URL")
	}
	form := "azblob://account/container/prefix?endpoint=…"
	if u.Scheme != "azblob" {
		return nil, store.ConfigError(opts, "the Azure driver takes "+form, "scheme %q is not azblob", u.Scheme)
	}
	if err := store.RejectUnknownQuery(opts, "endpoint"); err != nil {
		return nil, err
	}
	account := u.Host
	if !accountRE.MatchString(account) {
		return nil, store.ConfigError(opts, "the URL's host is the storage account name (3-24 lower-case letters and digits): "+form,
			"invalid storage account name %q in %s", account, u.Redacted())
	}
	containerName, prefix, _ := strings.Cut(strings.TrimPrefix(u.Path, "/"), "/")
	prefix = strings.TrimSuffix(prefix, "/")
	if !containerRE.MatchString(containerName) {
		return nil, store.ConfigError(opts, "container names are 3-63 lower-case letters, digits and single hyphens: "+form,
			"invalid container name %q in %s", containerName, u.Redacted())
	}
	if prefix != "" {
		if err := store.ValidateKey(prefix, 0); err != nil {
			return nil, store.ConfigError(opts, "fix the prefix in the URL", "invalid prefix: %v", err)
		}
		if err := checkAzureName(prefix); err != nil {
			return nil, store.ConfigError(opts, "fix the prefix in the URL", "invalid prefix: %v", err)
		}
	}

	endpoint := "https://" + account + ".blob.core.windows.net"
	explicitEndpoint := u.Query().Get("endpoint")
	if explicitEndpoint != "" {
		e, err := url.Parse(explicitEndpoint)
		if err != nil || (e.Scheme != "http" && e.Scheme != "https") || e.Host == "" || e.RawQuery != "" {
			return nil, store.ConfigError(opts, "endpoint is the blob service URL, e.g. https://ACCOUNT.blob.core.windows.net or http://127.0.0.1:10000/devstoreaccount1",
				"invalid endpoint %q", explicitEndpoint)
		}
		endpoint = strings.TrimSuffix(explicitEndpoint, "/")
	}

	tier, err := accessTier(opts.StorageClass)
	if err != nil {
		return nil, store.ConfigError(opts, "storage_class for Azure is an access tier: Hot, Cool, Cold or Archive", "%v", err)
	}

	s := &blobStore{
		name:        opts.Name,
		site:        site{account: account, container: containerName, endpoint: endpoint},
		prefix:      prefix,
		tier:        tier,
		partSize:    opts.Tuning.PartSize,
		threshold:   opts.Tuning.Threshold,
		concurrency: opts.Tuning.Concurrency,
		pageSize:    opts.Tuning.PageSize,
	}
	if s.partSize <= 0 {
		s.partSize = DefaultPartSize
	}
	s.partSize = min(s.partSize, maxBlockSize)
	if s.threshold <= 0 {
		s.threshold = DefaultThreshold
	}
	s.threshold = min(s.threshold, maxPutBlobSize)
	if s.concurrency <= 0 {
		s.concurrency = DefaultConcurrency
	}
	if s.pageSize <= 0 {
		s.pageSize = DefaultPageSize
	}
	s.pageSize = min(s.pageSize, maxListPageSize)

	clientOpts := &container.ClientOptions{ClientOptions: azcore.ClientOptions{
		Retry:     retryOptions(),
		Telemetry: policy.TelemetryOptions{ApplicationID: "cloudrepl-replicator"},
	}}
	if opts.WrapTransport != nil {
		clientOpts.Transport = &http.Client{Transport: opts.WrapTransport(http.DefaultTransport.(*http.Transport).Clone())}
	}
	if env := opts.Credentials.AzureConnectionStringEnv; env != "" {
		s.site.credential = "the connection string in $" + env
		s.site.connEnv = env
		s.client, s.site.endpoint, err = clientFromConnectionString(opts, s.site, explicitEndpoint != "", clientOpts)
	} else {
		s.site.credential = "the Azure default credential (AZURE_* workload identity variables, managed identity or az login)"
		s.client, err = clientFromDefaultCredential(opts, s.site, clientOpts)
	}
	if err != nil {
		return nil, err
	}
	return s, nil
}

// retryOptions keep the SDK's own retries short: two retries after about 0.5 s and
// 1.5 s absorb a dropped connection or one throttled answer without failing the
// activity (and losing the blocks staged in parallel), while anything longer is left
// to the activity's retry policy, which backs off for minutes and shows up in
// Temporal. The SDK's default (three retries, up to 60 s apart) would make an
// unreachable endpoint take most of a minute to report. A Retry-After from the
// service is still honoured, up to MaxRetryDelay. There is no per-try timeout: it
// would also cut long downloads, whose bodies are read under the try's context;
// stalls are bounded by the caller's context (activity timeouts and heartbeats).
func retryOptions() policy.RetryOptions {
	return policy.RetryOptions{
		MaxRetries:    2,
		RetryDelay:    500 * time.Millisecond,
		MaxRetryDelay: 5 * time.Second,
	}
}

func accessTier(class string) (*blob.AccessTier, error) {
	if class == "" {
		return nil, nil
	}
	for _, t := range []blob.AccessTier{blob.AccessTierHot, blob.AccessTierCool, blob.AccessTierCold, blob.AccessTierArchive} {
		if strings.EqualFold(class, string(t)) {
			return &t, nil
		}
	}
	return nil, fmt.Errorf("unknown access tier %q", class)
}

// connectionString holds the fields of an Azure Storage connection string that the
// driver uses (https://learn.microsoft.com/azure/storage/common/storage-configure-connection-string).
type connectionString struct {
	accountName, accountKey, sas string
	blobEndpoint                 string
	protocol, suffix             string
}

func parseConnectionString(cs string) (connectionString, error) {
	c := connectionString{protocol: "https", suffix: "core.windows.net"}
	for _, part := range strings.Split(strings.TrimRight(strings.TrimSpace(cs), ";"), ";") {
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			return c, fmt.Errorf("connection string part %q is not NAME=VALUE", redactPart(part))
		}
		switch strings.TrimSpace(k) {
		case "AccountName":
			c.accountName = v
		case "AccountKey":
			c.accountKey = v
		case "SharedAccessSignature":
			c.sas = strings.TrimPrefix(v, "?")
		case "BlobEndpoint":
			c.blobEndpoint = strings.TrimSuffix(v, "/")
		case "DefaultEndpointsProtocol":
			c.protocol = v
		case "EndpointSuffix":
			c.suffix = v
		}
	}
	if c.accountKey == "" && c.sas == "" {
		return c, fmt.Errorf("connection string has neither AccountKey nor SharedAccessSignature")
	}
	if c.accountKey != "" && c.accountName == "" {
		return c, fmt.Errorf("connection string has an AccountKey but no AccountName")
	}
	return c, nil
}

// redactPart keeps a malformed connection-string part out of messages when it may
// hold a secret.
func redactPart(p string) string {
	if len(p) > 12 {
		return p[:12] + "…"
	}
	return p
}

// clientFromConnectionString returns the client and the service URL it uses.
func clientFromConnectionString(opts store.Options, st site, explicitEndpoint bool, clientOpts *container.ClientOptions) (*container.Client, string, error) {
	env := st.connEnv
	raw := os.Getenv(env)
	if raw == "" {
		return nil, "", &store.Error{Code: store.CodePermission, Op: "open", Store: opts.Name,
			Hint: fmt.Sprintf("set $%s to the storage account's connection string, or clear azure_connection_string_env to use the Azure default credential", env),
			Err:  fmt.Errorf("environment variable %s is empty or unset", env)}
	}
	cs, err := parseConnectionString(raw)
	if err != nil {
		return nil, "", store.ConfigError(opts, fmt.Sprintf("check the connection string in $%s", env), "%v", err)
	}
	if cs.accountName != "" && cs.accountName != st.account {
		return nil, "", store.ConfigError(opts, fmt.Sprintf("the URL's account and $%s must name the same storage account", env),
			"the connection string in $%s is for account %q but the URL names %q", env, cs.accountName, st.account)
	}
	serviceURL := st.endpoint
	if !explicitEndpoint {
		switch {
		case cs.blobEndpoint != "":
			serviceURL = cs.blobEndpoint
		case cs.accountName != "":
			serviceURL = fmt.Sprintf("%s://%s.blob.%s", cs.protocol, cs.accountName, cs.suffix)
		}
	}
	containerURL := serviceURL + "/" + url.PathEscape(st.container)
	if cs.accountKey != "" {
		cred, err := container.NewSharedKeyCredential(cs.accountName, cs.accountKey)
		if err != nil {
			return nil, "", store.ConfigError(opts, fmt.Sprintf("check AccountKey in $%s (base64 of the account key)", env), "invalid account key: %v", err)
		}
		c, err := container.NewClientWithSharedKeyCredential(containerURL, cred, clientOpts)
		if err != nil {
			return nil, "", store.ConfigError(opts, fmt.Sprintf("check the endpoint %s", serviceURL), "creating the Azure client: %v", err)
		}
		return c, serviceURL, nil
	}
	c, err := container.NewClientWithNoCredential(containerURL+"?"+cs.sas, clientOpts)
	if err != nil {
		return nil, "", store.ConfigError(opts, fmt.Sprintf("check the endpoint %s and the SAS in $%s", serviceURL, env), "creating the Azure client: %v", err)
	}
	return c, serviceURL, nil
}

func clientFromDefaultCredential(opts store.Options, st site, clientOpts *container.ClientOptions) (*container.Client, error) {
	if strings.HasPrefix(st.endpoint, "http://") {
		// The SDK refuses to send bearer tokens over plain HTTP; say so now rather
		// than at the first request.
		return nil, store.ConfigError(opts, "use an https endpoint, or a connection string (azure_connection_string_env) for an emulator",
			"endpoint %s is plain HTTP: Azure identity tokens need HTTPS", st.endpoint)
	}
	cred, err := azidentity.NewDefaultAzureCredential(nil)
	if err != nil {
		return nil, store.ConfigError(opts, "configure an Azure identity (workload identity, managed identity, az login) or set azure_connection_string_env",
			"Azure default credential: %v", err)
	}
	c, err := container.NewClient(st.endpoint+"/"+url.PathEscape(st.container), cred, clientOpts)
	if err != nil {
		return nil, store.ConfigError(opts, fmt.Sprintf("check the endpoint %s", st.endpoint), "creating the Azure client: %v", err)
	}
	return c, nil
}

// Name is the store's name in messages.
func (s *blobStore) Name() string { return s.name }

// Close releases nothing: the SDK's HTTP client is shared and has no per-store state.
func (s *blobStore) Close() error { return nil }

// blobName maps a key to the blob's name in the container.
func (s *blobStore) blobName(key string) string { return store.JoinPrefix(s.prefix, key) }

func (s *blobStore) prefixLen() int {
	if s.prefix == "" {
		return 0
	}
	return len(s.prefix) + 1
}

// KeyPrefixLen is the length of what precedes every key in the container (the
// prefix and its '/'), for store.Checked.
func (s *blobStore) KeyPrefixLen() int { return s.prefixLen() }

// CheckName refuses keys that Azure would store or list under another name
// (store.KeyRules).
func (s *blobStore) CheckName(key string) error {
	if err := checkAzureName(key); err != nil {
		return err
	}
	// The limit counts the segments of the whole blob name, the prefix's included.
	if n := strings.Count(s.blobName(key), "/") + 1; n > maxSegments {
		return fmt.Errorf("key %q makes blob name of %d path segments with the prefix %q; Azure Blob Storage allows %d: flatten the tree or shorten the prefix", key, n, s.prefix, maxSegments)
	}
	return nil
}

// maxSegments is the most path segments Azure allows in a blob name.
const maxSegments = 254

// checkAzureName refuses names that Azure would store, or list back, under another
// name: its front end strips trailing dots from URL path segments and turns '\'
// into '/' (Azurite does the latter too), and its XML listings cannot carry U+FFFE
// or U+FFFF (Azurite fails the listing with a 500).
func checkAzureName(name string) error {
	if i := strings.IndexByte(name, '\\'); i >= 0 {
		return fmt.Errorf("key %q holds '\\', which Azure Blob Storage turns into '/' (it would be stored as %q): rename the file", name, strings.ReplaceAll(name, "\\", "/"))
	}
	if r := store.XMLUnsafeRune(name); r >= 0 {
		return fmt.Errorf("key %q holds %U, which Azure's XML listings cannot carry: rename the file", name, r)
	}
	for _, seg := range strings.Split(name, "/") {
		if strings.HasSuffix(seg, ".") {
			return fmt.Errorf("path segment %q of %q ends with '.', which Azure Blob Storage strips (it would be stored as %q): rename it", seg, name, strings.TrimRight(seg, "."))
		}
	}
	return nil
}
