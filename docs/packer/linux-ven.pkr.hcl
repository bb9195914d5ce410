# A golden image with the Illumio VEN prepared: it pairs with the PCE the first time a machine made from the
# image starts. See README.md. The source block is an example (Amazon EBS); any Packer builder works the same.
# Packer 1.7 or newer (required_plugins and `packer init`).
packer {
  required_plugins {
    amazon = {
      source  = "github.com/hashicorp/amazon"
      version = ">= 1.3.0"
    }
    ansible = {
      source  = "github.com/hashicorp/ansible"
      version = ">= 1.1.0"
    }
  }
}

variable "pce" {
  type        = string
  description = "The PCE the VENs pair with, HOST:PORT."
}

variable "pairing_profile" {
  type        = string
  description = "Pairing profile whose keys the image's machines pair with (unlimited uses)."
}

variable "pce_ca_file" {
  type        = string
  default     = ""
  description = "CA bundle of the PCE's certificate when it is not publicly trusted."
}

variable "source_ami" {
  type    = string
  default = "ami-0123456789abcdef0"
}

source "amazon-ebs" "linux" {
  ami_name      = "linux-illumio-ven-{{timestamp}}"
  instance_type = "t3.small"
  region        = "eu-west-1"
  source_ami    = var.source_ami
  ssh_username  = "admin"
}

build {
  sources = ["source.amazon-ebs.linux"]

  provisioner "ansible" {
    playbook_file = "${path.root}/golden_image.yml"
    user          = "admin"
    use_proxy     = false
    # The controller-side tasks (pairing profile, key) read ILLUMIO_* from Packer's environment.
    extra_arguments = [
      "--become",
      "--extra-vars", "ven_management_server=${var.pce}",
      "--extra-vars", "ven_pairing_profile=${var.pairing_profile}",
      "--extra-vars", "ven_ca_file=${var.pce_ca_file}",
      "--extra-vars", "ven_ca_trust_store=${var.pce_ca_file != "" ? "true" : "false"}",
    ]
  }
}
