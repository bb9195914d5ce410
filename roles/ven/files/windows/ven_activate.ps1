# Pairs an installed Illumio VEN, or prepares it for a golden image (microseg.illumio.ven role).
#
#   Mode activate: `illumio-ven-ctl.ps1 activate -management-server HOST:PORT -activation-code CODE [-role R ...]`
#                  run with `&` in this PowerShell process (no new process, so no command line holds the code).
#                  DeactivateFirst runs `illumio-ven-ctl.ps1 deactivate` before (re-pairing with another PCE).
#                  Without a code, the VEN must have been prepared for this PCE (agent_activation.cfg).
#   Mode prepare:  writes agent_activation.cfg (activation_code / masterconfig_server lines), readable by
#                  SYSTEM and Administrators only: the VEN activates with the PCE when the clone first starts.
# The activation code arrives as a parameter (inside the module's payload) and is blanked out of the output.
[CmdletBinding()]
param (
    [Parameter(Mandatory = $true)][ValidateSet('activate', 'prepare')][string]$Mode,
    [Parameter(Mandatory = $true)][string]$InstallDir,
    [Parameter(Mandatory = $true)][string]$DataDir,
    [Parameter(Mandatory = $true)][string]$ManagementServer,
    [string]$ActivationCode = '',
    [string[]]$ActivateArguments = @(),
    [bool]$DeactivateFirst = $false
)

$ErrorActionPreference = 'Stop'

$ctl = Join-Path $InstallDir 'illumio-ven-ctl.ps1'
$activationFile = Join-Path $DataDir 'etc\agent_activation.cfg'

if ($ActivationCode -and $ActivationCode -notmatch '^[0-9A-Fa-f]+$') { throw 'the activation code must be the hexadecimal code of a pairing key' }
if ($ManagementServer -notmatch '^[A-Za-z0-9.-]+:[0-9]{1,5}$') { throw "management server must be HOST:PORT, not '$ManagementServer'" }
foreach ($word in $ActivateArguments) {
    if ($word.Contains(':')) { throw "the Windows VEN rejects colons in activate options: '$word'" }
}
if (-not (Test-Path -LiteralPath $ctl -PathType Leaf)) { throw "the VEN is not installed: $ctl is missing" }

function Hide-Code([string]$Text) {
    if (-not $Text -or -not $ActivationCode) { return $Text }
    return $Text.Replace($ActivationCode, '<activation code>')
}

function Invoke-VenCtl([string[]]$Words) {
    # The VEN CTL in this process; its output lines (code blanked) or an error with its last words.
    $ErrorActionPreference = 'Continue'
    $global:LASTEXITCODE = 0
    $lines = @(& $ctl @Words *>&1 | ForEach-Object { Hide-Code ([string]$_) })
    $exitCode = $LASTEXITCODE
    $ErrorActionPreference = 'Stop'
    if ($exitCode -ne 0) {
        $tail = ($lines | Select-Object -Last 5) -join ' / '
        throw "illumio-ven-ctl.ps1 $($Words[0]) failed (exit $exitCode): $tail"
    }
    return $lines
}

function Write-ActivationFile {
    # Created empty, locked down to SYSTEM and Administrators, then filled.
    $folder = Split-Path -Parent $activationFile
    New-Item -ItemType Directory -Force -Path $folder | Out-Null
    if (Test-Path -LiteralPath $activationFile) { Remove-Item -LiteralPath $activationFile -Force }
    New-Item -ItemType File -Path $activationFile | Out-Null
    $acl = New-Object System.Security.AccessControl.FileSecurity
    $acl.SetAccessRuleProtection($true, $false)
    foreach ($sid in @('S-1-5-18', 'S-1-5-32-544')) {
        $identity = New-Object System.Security.Principal.SecurityIdentifier ($sid)
        $rule = New-Object System.Security.AccessControl.FileSystemAccessRule ($identity, 'FullControl', 'Allow')
        $acl.AddAccessRule($rule)
    }
    Set-Acl -LiteralPath $activationFile -AclObject $acl
    Set-Content -LiteralPath $activationFile -Encoding Ascii -Value @(
        "activation_code: $ActivationCode",
        "masterconfig_server: $ManagementServer"
    )
}

$output = @()
try {
    if ($Mode -eq 'prepare') {
        if (-not $ActivationCode) { throw 'preparing the VEN needs an activation code' }
        if ($ActivateArguments.Count -gt 0) { throw 'preparing takes no activate options: the pairing profile decides them' }
        Write-ActivationFile
        $output += "wrote $activationFile; the VEN activates with $ManagementServer when it next starts"
    }
    else {
        if ($DeactivateFirst) { $output += @(Invoke-VenCtl @('deactivate')) }
        $activate = @('activate', '-management-server', $ManagementServer)
        if ($ActivationCode) { $activate += @('-activation-code', $ActivationCode) }
        elseif (-not (Test-Path -LiteralPath $activationFile)) { throw "pairing the VEN with $ManagementServer needs an activation code" }
        $output += @(Invoke-VenCtl ($activate + $ActivateArguments))
    }
}
catch {
    throw (Hide-Code $_.Exception.Message)
}

$Ansible.Changed = $true
$Ansible.Result = @{ mode = $Mode; output = $output }
