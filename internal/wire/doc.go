// Package wire holds what crosses Temporal: the names of workflows, activities,
// signals and queries, and the inputs, results, outcomes and references they carry.
// It imports nothing beyond the standard library, so that the workflows compile
// without any cloud SDK and a change to a driver can never change a history.
package wire
