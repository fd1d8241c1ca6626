package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/cloudrepl/replicator/internal/config"
	"github.com/cloudrepl/replicator/internal/inbound"
	"github.com/cloudrepl/replicator/internal/trigger"
)

// serveEvents serves the notification endpoint on addr until the returned stop is
// called. Every request must carry secret; slow or oversized requests are cut off.
func serveEvents(addr, secret string, cfg *config.File, naming trigger.Naming, c client.Client, log *slog.Logger) (stop func(), err error) {
	if secret == "" {
		return nil, errors.New("--events-addr needs REPLICATOR_EVENTS_SECRET in the environment: the shared secret every notification must carry (Authorization: Bearer <secret>, or ?token=<secret> in the URL given to Pub/Sub or Event Grid)")
	}
	h := inbound.New(cfg, secret, func(ctx context.Context, policy, key string) error {
		_, err := naming.File(ctx, c, policy, key, "event")
		return err
	}, log)
	mux := http.NewServeMux()
	mux.Handle("/events/", h)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--events-addr %s: %w", addr, err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second, MaxHeaderBytes: 64 << 10}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("events endpoint stopped", "err", err)
		}
	}()
	log.Info("serving object-change notifications", "addr", ln.Addr().String())
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}, nil
}
