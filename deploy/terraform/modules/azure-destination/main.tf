locals {
  internal = var.prefix == "" ? "${var.container}/.replicator/" : "${var.container}/${var.prefix}/.replicator/"
}

resource "azurerm_storage_account" "this" {
  name                              = var.account_name
  resource_group_name               = var.resource_group_name
  location                          = var.location
  account_tier                      = "Standard"
  account_replication_type          = "ZRS"
  min_tls_version                   = "TLS1_2"
  https_traffic_only_enabled        = true
  allow_nested_items_to_be_public   = false
  shared_access_key_enabled         = false
  infrastructure_encryption_enabled = true

  blob_properties {
    versioning_enabled = true
    delete_retention_policy {
      days = 7
    }
  }
}

# With a Key Vault key, every blob of the container is encrypted under it through an
# encryption scope that is the container's default and cannot be overridden per
# request: writes, server-side copies (trash, undo, atomic commits) and the
# replicator's own objects alike, with no setting on the replicator's side (Azure's
# Start Copy From URL, which those copies use, takes no scope of its own).
resource "azurerm_storage_encryption_scope" "this" {
  count                              = var.encryption_key_vault_key_id == null ? 0 : 1
  name                               = "replicator"
  storage_account_id                 = azurerm_storage_account.this.id
  source                             = "Microsoft.KeyVault"
  key_vault_key_id                   = var.encryption_key_vault_key_id
  infrastructure_encryption_required = true
}

resource "azurerm_storage_container" "this" {
  name                              = var.container
  storage_account_id                = azurerm_storage_account.this.id
  container_access_type             = "private"
  default_encryption_scope          = var.encryption_key_vault_key_id == null ? null : azurerm_storage_encryption_scope.this[0].name
  encryption_scope_override_enabled = var.encryption_key_vault_key_id == null ? null : false
}

resource "azurerm_storage_management_policy" "this" {
  storage_account_id = azurerm_storage_account.this.id

  rule {
    name    = "replicator-staging-and-undo"
    enabled = true
    filters {
      blob_types   = ["blockBlob"]
      prefix_match = ["${local.internal}staging/", "${local.internal}undo/"]
    }
    actions {
      base_blob {
        delete_after_days_since_modification_greater_than = var.stage_expiry_days
      }
    }
  }

  rule {
    name    = "replicator-trash"
    enabled = true
    filters {
      blob_types   = ["blockBlob"]
      prefix_match = ["${local.internal}trash/"]
    }
    actions {
      base_blob {
        delete_after_days_since_modification_greater_than = var.trash_retention_days
      }
    }
  }

  rule {
    name    = "old-versions"
    enabled = true
    filters {
      blob_types = ["blockBlob"]
    }
    actions {
      version {
        delete_after_days_since_creation = var.noncurrent_version_days
      }
    }
  }
}

# The workers' identity (Azure workload identity on AKS: federate it with their
# Kubernetes service account).
resource "azurerm_user_assigned_identity" "worker" {
  name                = "replicator-worker-${var.account_name}"
  resource_group_name = var.resource_group_name
  location            = var.location
}

# Read, write and delete blobs of this container only.
resource "azurerm_role_assignment" "worker" {
  scope                = azurerm_storage_container.this.id
  role_definition_name = "Storage Blob Data Contributor"
  principal_id         = azurerm_user_assigned_identity.worker.principal_id
}

# Blob index tags (carried from tagged bucket sources) are outside Storage Blob Data
# Contributor; Storage Blob Data Owner would add them but also ACL and ownership
# rights. A role with only the two tag actions, on this container only.
resource "azurerm_role_definition" "blob_tags" {
  name        = "replicator-blob-tags-${var.account_name}"
  scope       = azurerm_storage_account.this.id
  description = "Read and write blob index tags (the replicator carries its sources' tags)."
  permissions {
    actions = []
    data_actions = [
      "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/tags/read",
      "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/tags/write",
    ]
  }
  assignable_scopes = [azurerm_storage_account.this.id]
}

resource "azurerm_role_assignment" "worker_tags" {
  scope              = azurerm_storage_container.this.id
  role_definition_id = azurerm_role_definition.blob_tags.role_definition_resource_id
  principal_id       = azurerm_user_assigned_identity.worker.principal_id
}
