// Package compose checks the replicator's container deployment, since no Docker
// engine runs where the project is built: deploy/docker/Dockerfile with BuildKit's
// own parser and shell lexer, compose.yaml with compose-go (the loader docker compose
// uses), prometheus.yml and the Grafana provisioning files by strict decoding, and
// the sample replicator.yaml against the Compose services it names. The tests also
// build both binaries natively with the Dockerfile's own `go build` line and check
// that they are static and print the stamped version.
//
// The checks are functions returning every problem found, so the tests run them both
// on the real files (no problem expected) and on broken copies under testdata (each
// mistake expected to be reported). It is a module of its own so the replicator's
// module does not carry compose-go and BuildKit.
package compose
