locals {
  internal = var.prefix == "" ? ".replicator/" : "${var.prefix}/.replicator/"
}

data "google_storage_project_service_account" "gcs" {
  project = var.project
}

# The GCS service agent encrypts and decrypts with the CMEK key.
resource "google_kms_crypto_key_iam_member" "gcs_agent" {
  crypto_key_id = var.kms_key_name
  role          = "roles/cloudkms.cryptoKeyEncrypterDecrypter"
  member        = "serviceAccount:${data.google_storage_project_service_account.gcs.email_address}"
}

resource "google_storage_bucket" "this" {
  project                     = var.project
  name                        = var.bucket
  location                    = var.location
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"

  versioning {
    enabled = true
  }

  encryption {
    default_kms_key_name = var.kms_key_name
  }

  lifecycle_rule {
    condition {
      matches_prefix = ["${local.internal}staging/", "${local.internal}undo/"]
      age            = var.stage_expiry_days
    }
    action {
      type = "Delete"
    }
  }

  lifecycle_rule {
    condition {
      matches_prefix = ["${local.internal}trash/"]
      age            = var.trash_retention_days
    }
    action {
      type = "Delete"
    }
  }

  lifecycle_rule {
    condition {
      days_since_noncurrent_time = var.noncurrent_version_days
      with_state                 = "ARCHIVED"
    }
    action {
      type = "Delete"
    }
  }

  depends_on = [google_kms_crypto_key_iam_member.gcs_agent]
}

resource "google_service_account" "worker" {
  project      = var.project
  account_id   = var.worker_service_account_id
  display_name = "Replicator worker"
}

# What the worker does on this bucket only: list, read, write, delete objects.
resource "google_project_iam_custom_role" "worker" {
  project     = var.project
  role_id     = "replicatorWorker_${replace(var.bucket, "-", "_")}"
  title       = "Replicator worker on ${var.bucket}"
  description = "Objects of one destination bucket: list, read, create, overwrite, delete."
  permissions = [
    "storage.buckets.get",
    "storage.objects.list",
    "storage.objects.get",
    "storage.objects.create",
    "storage.objects.update",
    "storage.objects.delete",
  ]
}

resource "google_storage_bucket_iam_member" "worker" {
  bucket = google_storage_bucket.this.name
  role   = google_project_iam_custom_role.worker.id
  member = "serviceAccount:${google_service_account.worker.email}"
}
