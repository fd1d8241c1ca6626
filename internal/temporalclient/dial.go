// Package temporalclient connects the worker and the starter to Temporal the same way:
// from the standard environment variables and config profile of the Temporal CLI and
// SDKs (TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_API_KEY, TEMPORAL_TLS_*,
// TEMPORAL_PROFILE, the temporal.toml file), so a self-hosted cluster, the dev server
// and Temporal Cloud work unchanged.
package temporalclient

import (
	"fmt"
	"log/slog"
	"os"
	"strings"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/contrib/envconfig"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"

	"github.com/cloudrepl/replicator/internal/codec"
)

// Options loads the client options from the environment and config profile.
func Options() (client.Options, error) {
	opts, err := envconfig.LoadDefaultClientOptions()
	if err != nil {
		return opts, fmt.Errorf("load Temporal client settings (TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_API_KEY, TEMPORAL_TLS_*, TEMPORAL_PROFILE): %w", err)
	}
	if opts.HostPort == "" {
		opts.HostPort = client.DefaultHostPort
	}
	if opts.Logger == nil {
		opts.Logger = log.NewStructuredLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	}
	dc, err := DataConverter()
	if err != nil {
		return opts, err
	}
	opts.DataConverter = dc
	// Failure messages and stack traces name keys and paths too: with the codec on,
	// they travel encoded like every other payload.
	if _, encrypted := dc.(*converter.CodecDataConverter); encrypted {
		opts.FailureConverter = temporal.NewDefaultFailureConverter(temporal.DefaultFailureConverterOptions{DataConverter: dc, EncodeCommonAttributes: true})
	}
	return opts, nil
}

// DataConverter is the data converter of every client: Temporal's default, with the
// payload codec when REPLICATOR_CODEC_KEYS (or _FILE) configures one. The starter's
// own decoding of histories and heartbeats uses it too.
func DataConverter() (converter.DataConverter, error) {
	c, err := codec.FromEnv()
	if err != nil {
		return nil, err
	}
	if c == nil {
		return converter.GetDefaultDataConverter(), nil
	}
	return c.DataConverter(), nil
}

// Dial connects with Options, adjusted by adjust when it is not nil.
func Dial(adjust func(*client.Options)) (client.Client, error) {
	opts, err := Options()
	if err != nil {
		return nil, err
	}
	if adjust != nil {
		adjust(&opts)
	}
	c, err := client.Dial(opts)
	if err != nil {
		return nil, fmt.Errorf("connect to Temporal at %s (namespace %q): %w; %s", opts.HostPort, opts.Namespace, err, dialHint(err, opts))
	}
	return c, nil
}

// dialHint says what to check after a failed connection: the TLS settings when TLS
// is in play (a certificate the other side does not trust, or none where one is
// required), else the address.
func dialHint(err error, opts client.Options) string {
	msg := strings.ToLower(err.Error())
	tlsFailure := strings.Contains(msg, "tls") || strings.Contains(msg, "x509") || strings.Contains(msg, "certificate") ||
		strings.Contains(msg, "handshake") || strings.Contains(msg, "authentication handshake")
	if opts.ConnectionOptions.TLS != nil || tlsFailure {
		return "check the TLS settings: TEMPORAL_TLS_SERVER_CA_CERT_PATH (the CA that signed the server's certificate), " +
			"TEMPORAL_TLS_CLIENT_CERT_PATH and TEMPORAL_TLS_CLIENT_KEY_PATH (this client's certificate, which the server must trust; " +
			"required by servers that ask for mutual TLS), and TEMPORAL_TLS_SERVER_NAME (a name the server's certificate holds)"
	}
	return "check TEMPORAL_ADDRESS or start the local stack with `make run`"
}
