variable "resource_group_name" {
  description = "Resource group of the storage account."
  type        = string
}

variable "location" {
  description = "Azure region of the storage account."
  type        = string
}

variable "account_name" {
  description = "Name of the storage account (3 to 24 lower-case letters and digits)."
  type        = string
}

variable "container" {
  description = "Name of the destination container."
  type        = string
}

variable "prefix" {
  description = "Destination prefix in the container, without a trailing slash; empty for the whole container."
  type        = string
  default     = ""
}

variable "stage_expiry_days" {
  description = "Days after which blobs under .replicator/staging/ and .replicator/undo/ are deleted."
  type        = number
  default     = 2
}

variable "trash_retention_days" {
  description = "Days blobs under .replicator/trash/ are kept: the policy's safety.trash_retention."
  type        = number
  default     = 30
}

variable "noncurrent_version_days" {
  description = "Days earlier versions of blobs are kept."
  type        = number
  default     = 90
}

variable "encryption_key_vault_key_id" {
  description = "A Key Vault key ID: every blob of the container is then encrypted under it through an encryption scope the container enforces (customer-managed keys). Null keeps Microsoft-managed keys (with infrastructure encryption)."
  type        = string
  default     = null
}

