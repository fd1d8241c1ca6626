// Package validate checks the deployment artifacts under deploy/ with the parsers of
// the tools that consume them, since no Docker engine, Kubernetes or Terraform runs
// here: the Dockerfile with BuildKit's, the Compose file with compose-go, and the
// binaries built natively with the image's flags. It is a module of its own, so the
// replicator's module does not carry these tools' dependencies.
package validate
