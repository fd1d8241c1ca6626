# One destination on each cloud, as the replicator.yaml of the README's example uses
# them. terraform init && terraform apply, then copy the outputs into replicator.yaml.
terraform {
  required_version = ">= 1.6"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 6.0"
    }
    google = {
      source  = "hashicorp/google"
      version = "~> 6.0"
    }
    azurerm = {
      source  = "hashicorp/azurerm"
      version = "~> 4.0"
    }
  }
}

provider "aws" {
  region = "eu-west-1"
}

provider "google" {
  project = var.gcp_project
}

provider "azurerm" {
  features {}
}

variable "gcp_project" {
  description = "Google Cloud project of the GCS destination."
  type        = string
}

variable "gcp_kms_key_name" {
  description = "Cloud KMS key for the GCS destination's CMEK."
  type        = string
}

variable "azure_resource_group" {
  description = "Resource group of the Azure destination."
  type        = string
}

module "aws_eu" {
  source           = "../../modules/aws-destination"
  bucket           = "acme-invoices"
  prefix           = "eu"
  worker_role_name = "replicator-worker"
}

module "gcp_eu" {
  source       = "../../modules/gcp-destination"
  project      = var.gcp_project
  bucket       = "acme-invoices"
  location     = "EU"
  prefix       = "eu"
  kms_key_name = var.gcp_kms_key_name
}

module "azure_we" {
  source              = "../../modules/azure-destination"
  resource_group_name = var.azure_resource_group
  location            = "westeurope"
  account_name        = "acmestore"
  container           = "invoices"
  prefix              = "eu"
}

output "destinations" {
  description = "The destinations' URLs for replicator.yaml."
  value = {
    "aws-eu"   = module.aws_eu.destination_url
    "gcp-eu"   = module.gcp_eu.destination_url
    "azure-we" = module.azure_we.destination_url
  }
}
