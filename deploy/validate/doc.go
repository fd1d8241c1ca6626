// Package validate checks the deployment artifacts under deploy/ that no tool can run
// here: the Terraform modules with HashiCorp's HCL parser, the alert rules and the
// dashboard with Prometheus's PromQL parser and promtool, and every metric they use
// against a running worker. (The Dockerfile and the Compose file have their own
// module, deploy/compose.) It is a module of its own, so the replicator's module does
// not carry these tools' dependencies.
package validate
