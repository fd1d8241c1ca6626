output "destination_url" {
  description = "The destination's URL for replicator.yaml."
  value       = var.prefix == "" ? "s3://${aws_s3_bucket.this.id}?region=${aws_s3_bucket.this.region}" : "s3://${aws_s3_bucket.this.id}/${var.prefix}?region=${aws_s3_bucket.this.region}"
}

output "kms_key_arn" {
  description = "The SSE-KMS key: the destination's sse_kms_key_id, with sse: aws:kms."
  value       = local.kms_key
}

output "worker_policy_arn" {
  description = "The IAM policy the workers need; attach it to their role (IRSA on EKS)."
  value       = aws_iam_policy.worker.arn
}
