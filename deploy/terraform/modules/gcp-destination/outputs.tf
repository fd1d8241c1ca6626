output "destination_url" {
  description = "The destination's URL for replicator.yaml."
  value       = var.prefix == "" ? "gs://${google_storage_bucket.this.name}" : "gs://${google_storage_bucket.this.name}/${var.prefix}"
}

output "worker_service_account_email" {
  description = "The workers' service account (annotate their Kubernetes service account with iam.gke.io/gcp-service-account)."
  value       = google_service_account.worker.email
}
