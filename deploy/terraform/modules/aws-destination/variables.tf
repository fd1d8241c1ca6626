variable "bucket" {
  description = "Name of the destination bucket."
  type        = string
}

variable "prefix" {
  description = "Destination prefix in the bucket (the path after the bucket in the destination URL), without a trailing slash; empty for the whole bucket."
  type        = string
  default     = ""
}

variable "kms_key_arn" {
  description = "KMS key for SSE-KMS; empty creates one for this bucket."
  type        = string
  default     = ""
}

variable "stage_expiry_days" {
  description = "Days after which objects under .replicator/staging/ and .replicator/undo/ expire: what runs that were terminated left (every reconcile sweeps them after a day too)."
  type        = number
  default     = 2
}

variable "trash_retention_days" {
  description = "Days objects under .replicator/trash/ are kept: the policy's safety.trash_retention."
  type        = number
  default     = 30
}

variable "noncurrent_version_days" {
  description = "Days earlier versions of replicas are kept (what starter restore --as-of can reach)."
  type        = number
  default     = 90
}

variable "worker_role_name" {
  description = "IAM role of the workers (for EKS, the IRSA role of their service account) that the policy is attached to; empty attaches nothing."
  type        = string
  default     = ""
}
