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

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/contrib/envconfig"
	"go.temporal.io/sdk/log"
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
	return opts, nil
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
		return nil, fmt.Errorf("connect to Temporal at %s (namespace %q): %w; check TEMPORAL_ADDRESS or start the local stack with `make run`", opts.HostPort, opts.Namespace, err)
	}
	return c, nil
}
