# Installs or upgrades the Illumio VEN on Windows from a package already on the host (microseg.illumio.ven).
#
#   .exe (VEN 21.2.1 and later):  <file> /install /quiet /norestart /log <log> [INSTALLFOLDER=..] [DATAFOLDER=..]
#   .msi (earlier releases):      msiexec.exe /i <file> /qn /norestart /l*v <log>
# INSTALLFOLDER and DATAFOLDER are given at the first install only: the installation guide warns that an
# upgrade with them fails. VEN_PROXY_SERVER is passed when ProxyServer is set. The package's SHA-256 is
# checked first when Sha256 is given. No activation code is involved.
[CmdletBinding()]
param (
    [Parameter(Mandatory = $true)][string]$Path,
    [string]$Sha256 = '',
    [string]$InstallFolder = '',
    [string]$DataFolder = '',
    [string]$ProxyServer = '',
    [bool]$FirstInstall = $true,
    [Parameter(Mandatory = $true)][string]$LogFile
)

$ErrorActionPreference = 'Stop'

if (-not (Test-Path -LiteralPath $Path -PathType Leaf)) { throw "no package at $Path" }
if ($Sha256) {
    $actual = (Get-FileHash -Algorithm SHA256 -LiteralPath $Path).Hash.ToLower()
    if ($actual -ne $Sha256.ToLower()) { throw "sha256 of $Path is $actual, expected $($Sha256.ToLower())" }
}

$properties = @()
if ($FirstInstall -and $InstallFolder) { $properties += "INSTALLFOLDER=`"$InstallFolder`"" }
if ($FirstInstall -and $DataFolder) { $properties += "DATAFOLDER=`"$DataFolder`"" }
if ($ProxyServer) { $properties += "VEN_PROXY_SERVER=$ProxyServer" }

New-Item -ItemType Directory -Force -Path (Split-Path -Parent $LogFile) | Out-Null
$extension = [System.IO.Path]::GetExtension($Path).ToLower()
if ($extension -eq '.exe') {
    $arguments = @('/install', '/quiet', '/norestart', '/log', "`"$LogFile`"") + $properties
    $process = Start-Process -FilePath $Path -ArgumentList $arguments -Wait -PassThru
}
elseif ($extension -eq '.msi') {
    if ($properties | Where-Object { $_ -like 'INSTALLFOLDER=*' -or $_ -like 'DATAFOLDER=*' }) {
        throw 'custom VEN folders (INSTALLFOLDER, DATAFOLDER) are documented for the EXE installer only'
    }
    $arguments = @('/i', "`"$Path`"", '/qn', '/norestart', '/l*v', "`"$LogFile`"") + $properties
    $process = Start-Process -FilePath 'msiexec.exe' -ArgumentList $arguments -Wait -PassThru
}
else { throw "the Windows VEN comes as .exe or .msi, not $extension" }

# 3010 and 1641: installed, a restart is needed (or was started) to finish.
$rebootCodes = @(3010, 1641)
if ($process.ExitCode -ne 0 -and $rebootCodes -notcontains $process.ExitCode) {
    throw "the VEN installer exited with code $($process.ExitCode); see $LogFile"
}

$Ansible.Changed = $true
$Ansible.Result = @{
    package         = $Path
    exit_code       = $process.ExitCode
    reboot_required = $rebootCodes -contains $process.ExitCode
    log             = $LogFile
}
