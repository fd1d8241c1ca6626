output "destination_url" {
  description = "The destination's URL for replicator.yaml."
  value       = var.prefix == "" ? "azblob://${azurerm_storage_account.this.name}/${var.container}" : "azblob://${azurerm_storage_account.this.name}/${var.container}/${var.prefix}"
}

output "worker_identity_client_id" {
  description = "Client ID of the workers' managed identity (azure.workload.identity/client-id on their Kubernetes service account)."
  value       = azurerm_user_assigned_identity.worker.client_id
}
