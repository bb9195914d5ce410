# Runs one VEN CTL command on a Windows host (microseg.illumio.ven role); never handles an activation code.
#
#   suspend | unsuspend | deactivate       illumio-ven-ctl.ps1 <command>
#   unpair                                 illumio-ven-ctl.ps1 unpair <recommended|saved|open>
#   proxy                                  makes the VEN's own proxy (set-proxy / reset-proxy, VEN 22.2+)
#                                          match ProxyServer ('' = none) and restarts the VEN on a change
# With FirewallBackupDir, the Windows Firewall policy is exported there first (netsh advfirewall export),
# to a timestamped .wfw file and a windows-firewall-latest.wfw copy.
[CmdletBinding()]
param (
    [Parameter(Mandatory = $true)][string]$InstallDir,
    [Parameter(Mandatory = $true)][ValidateSet('suspend', 'unsuspend', 'deactivate', 'unpair', 'proxy')][string]$Command,
    [ValidateSet('recommended', 'saved', 'open')][string]$FirewallRestore,
    [string]$ProxyServer = '',
    [string]$FirewallBackupDir = ''
)

$ErrorActionPreference = 'Stop'

$ctl = Join-Path $InstallDir 'illumio-ven-ctl.ps1'
if (-not (Test-Path -LiteralPath $ctl -PathType Leaf)) { throw "the VEN is not installed: $ctl is missing" }
if ($Command -eq 'unpair' -and -not $FirewallRestore) { throw 'unpair needs FirewallRestore: recommended, saved or open' }

function Invoke-VenCtl([string[]]$Words) {
    $ErrorActionPreference = 'Continue'
    $global:LASTEXITCODE = 0
    $lines = @(& $ctl @Words *>&1 | ForEach-Object { [string]$_ })
    $exitCode = $LASTEXITCODE
    $ErrorActionPreference = 'Stop'
    if ($exitCode -ne 0) {
        $tail = ($lines | Select-Object -Last 5) -join ' / '
        throw "illumio-ven-ctl.ps1 $($Words -join ' ') failed (exit $exitCode): $tail"
    }
    return $lines
}

function Backup-Firewall([string]$Folder) {
    New-Item -ItemType Directory -Force -Path $Folder | Out-Null
    $stamp = (Get-Date).ToUniversalTime().ToString('yyyyMMddTHHmmssZ')
    $file = Join-Path $Folder "windows-firewall-$stamp.wfw"
    $said = @(& netsh.exe advfirewall export $file 2>&1 | ForEach-Object { [string]$_ })
    if ($LASTEXITCODE -ne 0) { throw "netsh advfirewall export failed (exit $LASTEXITCODE): $($said -join ' / ')" }
    Copy-Item -LiteralPath $file -Destination (Join-Path $Folder 'windows-firewall-latest.wfw') -Force
    return $file
}

function Get-VenProxy {
    # `show-proxy`: a line naming the proxy, or none when no proxy is set.
    foreach ($line in (Invoke-VenCtl @('show-proxy'))) {
        if ($line -match '^\s*proxy[ _]server\s*:\s*(?<proxy>\S*)\s*$') {
            $proxy = $Matches['proxy']
            if (@('', '(not set)', 'none', 'n/a') -contains $proxy.ToLower()) { return '' }
            return $proxy
        }
    }
    return ''
}

$result = @{ command = $Command; output = @(); backup = $null }
$changed = $true
if ($FirewallBackupDir) { $result['backup'] = Backup-Firewall $FirewallBackupDir }

switch ($Command) {
    'unpair' {
        $result['output'] = @(Invoke-VenCtl @('unpair', $FirewallRestore))
        if (Test-Path -LiteralPath $ctl) {
            Write-Warning "illumio-ven-ctl.ps1 unpair succeeded, but $ctl is still there; the VEN may not be fully uninstalled"
        }
    }
    'proxy' {
        $current = Get-VenProxy
        $result['before'] = $current
        if ($current -eq $ProxyServer) { $changed = $false }
        else {
            if ($ProxyServer) { $result['output'] = @(Invoke-VenCtl @('set-proxy', $ProxyServer)) }
            else { $result['output'] = @(Invoke-VenCtl @('reset-proxy')) }
            # The VEN reads its proxy when it starts.
            $result['output'] += @(Invoke-VenCtl @('restart'))
        }
    }
    default { $result['output'] = @(Invoke-VenCtl @($Command)) }
}

$Ansible.Changed = $changed
$Ansible.Result = $result
