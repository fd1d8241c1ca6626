// Package activities holds the replicator's Temporal activities. Each is thin: it
// resolves the policy and the stores, heartbeats, calls the replication engine
// (internal/replica) and maps its errors to retryable or typed non-retryable
// application errors. Inputs, results and names are those of package wire, the only
// vocabulary workflows share with activities.
package activities
