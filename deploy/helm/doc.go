// Package helm holds the tests of the worker's Helm chart (replicator/): every
// rendering is made by helm itself (built from the Go module proxy by
// deploy/local/install.sh), every rendered object is decoded strictly into its
// k8s.io/api or KEDA type, and what the objects promise each other (selectors,
// termination grace, metrics address, the queues KEDA watches, workload identity)
// is checked. A module of its own, so that Kubernetes' dependencies stay out of the
// replicator's.
package helm
