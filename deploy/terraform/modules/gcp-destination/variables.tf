variable "project" {
  description = "Google Cloud project of the bucket."
  type        = string
}

variable "bucket" {
  description = "Name of the destination bucket."
  type        = string
}

variable "location" {
  description = "Location of the bucket (a region, dual-region or multi-region)."
  type        = string
}

variable "prefix" {
  description = "Destination prefix in the bucket, without a trailing slash; empty for the whole bucket."
  type        = string
  default     = ""
}

variable "kms_key_name" {
  description = "Cloud KMS key (projects/P/locations/L/keyRings/R/cryptoKeys/K) for CMEK; the destination's sse_kms_key_id."
  type        = string
}

variable "stage_expiry_days" {
  description = "Days after which objects under .replicator/staging/ and .replicator/undo/ are deleted."
  type        = number
  default     = 2
}

variable "trash_retention_days" {
  description = "Days objects under .replicator/trash/ are kept: the policy's safety.trash_retention."
  type        = number
  default     = 30
}

variable "noncurrent_version_days" {
  description = "Days earlier versions of replicas are kept."
  type        = number
  default     = 90
}

variable "worker_service_account_id" {
  description = "Account ID of the workers' service account (for GKE Workload Identity, bind it to their Kubernetes service account)."
  type        = string
  default     = "replicator-worker"
}
