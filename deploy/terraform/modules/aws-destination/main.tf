locals {
  # The replicator's own subtree under the destination prefix (DESIGN section 5).
  internal = var.prefix == "" ? ".replicator/" : "${var.prefix}/.replicator/"
  objects  = var.prefix == "" ? "${aws_s3_bucket.this.arn}/*" : "${aws_s3_bucket.this.arn}/${var.prefix}/*"
  kms_key  = var.kms_key_arn != "" ? var.kms_key_arn : aws_kms_key.this[0].arn
}

resource "aws_kms_key" "this" {
  count               = var.kms_key_arn == "" ? 1 : 0
  description         = "SSE-KMS key of replicator destination bucket ${var.bucket}"
  enable_key_rotation = true
}

resource "aws_s3_bucket" "this" {
  bucket = var.bucket
}

resource "aws_s3_bucket_versioning" "this" {
  bucket = aws_s3_bucket.this.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "this" {
  bucket = aws_s3_bucket.this.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = local.kms_key
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_public_access_block" "this" {
  bucket                  = aws_s3_bucket.this.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_lifecycle_configuration" "this" {
  bucket     = aws_s3_bucket.this.id
  depends_on = [aws_s3_bucket_versioning.this]

  rule {
    id     = "replicator-staging"
    status = "Enabled"
    filter {
      prefix = "${local.internal}staging/"
    }
    expiration {
      days = var.stage_expiry_days
    }
  }

  rule {
    id     = "replicator-undo"
    status = "Enabled"
    filter {
      prefix = "${local.internal}undo/"
    }
    expiration {
      days = var.stage_expiry_days
    }
  }

  rule {
    id     = "replicator-trash"
    status = "Enabled"
    filter {
      prefix = "${local.internal}trash/"
    }
    expiration {
      days = var.trash_retention_days
    }
  }

  rule {
    id     = "abort-incomplete-uploads-and-old-versions"
    status = "Enabled"
    filter {
      prefix = var.prefix
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
    noncurrent_version_expiration {
      noncurrent_days = var.noncurrent_version_days
    }
  }
}

# What the worker does on the destination, and nothing else: list (and list versions
# for restore --as-of), read, write with preconditions, copy, delete, tag, run and
# abort multipart uploads, and use the bucket's KMS key.
data "aws_iam_policy_document" "worker" {
  statement {
    sid       = "ListTheDestination"
    actions   = ["s3:ListBucket", "s3:ListBucketVersions", "s3:ListBucketMultipartUploads", "s3:GetBucketVersioning"]
    resources = [aws_s3_bucket.this.arn]
  }
  statement {
    sid = "ReadAndWriteReplicas"
    actions = [
      "s3:GetObject", "s3:GetObjectVersion", "s3:GetObjectTagging", "s3:GetObjectVersionTagging",
      "s3:PutObject", "s3:PutObjectTagging", "s3:DeleteObject",
      "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts",
    ]
    resources = [local.objects]
  }
  statement {
    sid       = "EncryptWithTheBucketKey"
    actions   = ["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey"]
    resources = [local.kms_key]
  }
}

resource "aws_iam_policy" "worker" {
  name        = "replicator-${var.bucket}"
  description = "What the replicator's workers need on destination bucket ${var.bucket}."
  policy      = data.aws_iam_policy_document.worker.json
}

resource "aws_iam_role_policy_attachment" "worker" {
  count      = var.worker_role_name == "" ? 0 : 1
  role       = var.worker_role_name
  policy_arn = aws_iam_policy.worker.arn
}
