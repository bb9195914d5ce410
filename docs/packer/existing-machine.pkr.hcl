# The same golden-image preparation on a machine that already exists (a VM you snapshot or template yourself):
# Packer's null builder only connects to it over SSH and runs the provisioner; making the image from the machine
# afterwards is up to your platform. See README.md. Packer 1.7 or newer (required_plugins and `packer init`).
packer {
  required_plugins {
    ansible = {
      source  = "github.com/hashicorp/ansible"
      version = ">= 1.1.0"
    }
  }
}

variable "host" {
  type        = string
  description = "Address of the machine to prepare."
}

variable "ssh_username" {
  type    = string
  default = "admin"
}

variable "ssh_private_key_file" {
  type    = string
  default = "~/.ssh/id_ed25519"
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

source "null" "existing" {
  communicator         = "ssh"
  ssh_host             = var.host
  ssh_username         = var.ssh_username
  ssh_private_key_file = var.ssh_private_key_file
}

build {
  sources = ["source.null.existing"]

  provisioner "ansible" {
    playbook_file   = "${path.root}/golden_image.yml"
    user            = var.ssh_username
    use_proxy       = false
    extra_arguments = [
      "--become",
      "--private-key", var.ssh_private_key_file,
      "--extra-vars", "ven_management_server=${var.pce}",
      "--extra-vars", "ven_pairing_profile=${var.pairing_profile}",
      "--extra-vars", "ven_ca_file=${var.pce_ca_file}",
      "--extra-vars", "ven_ca_trust_store=${var.pce_ca_file != "" ? "true" : "false"}",
    ]
  }
}
