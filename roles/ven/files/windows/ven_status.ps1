# Reads the Illumio VEN of a Windows host (microseg.illumio.ven role). Changes nothing.
#
# Runs `illumio-ven-ctl.ps1 status` in this PowerShell process and turns what it prints into one object:
# installed, version, activated, prepared, suspended, running, agent_state, management_server, services...
# The activation file is read for its masterconfig_server line only; its activation code is never read.
# When `status` names no management server, the one in the role's install record (RecordFile, written after
# the role paired the VEN) stands in for it.
[CmdletBinding()]
param (
    [Parameter(Mandatory = $true)][string]$InstallDir,
    [Parameter(Mandatory = $true)][string]$DataDir,
    [string]$RecordFile = ''
)

$ErrorActionPreference = 'Stop'
$Ansible.Changed = $false

$ctl = Join-Path $InstallDir 'illumio-ven-ctl.ps1'
$activationFile = Join-Path $DataDir 'etc\agent_activation.cfg'
# `Key: value` lines of `status` and the fact each becomes.
$statusKeys = @{
    'ven version'       = 'version'
    'activation'        = 'activation'
    'management server' = 'management_server'
    'proxy server'      = 'proxy_server'
    'ven connectivity'  = 'connectivity'
    'agent state'       = 'agent_state'
    'enforcement mode'  = 'enforcement_mode'
    'visibility level'  = 'visibility_level'
}
$notSet = @('', '(not set)', 'n/a', 'none')

$facts = [ordered]@{
    installed              = $false
    version                = $null
    activated              = $false
    prepared               = $false
    activation             = $null
    state                  = $null
    running                = $false
    suspended              = $false
    agent_state            = $null
    enforcement_mode       = $null
    visibility_level       = $null
    management_server      = $null
    proxy_server           = $null
    connectivity           = $null
    services               = @{}
    install_dir            = $InstallDir
    data_dir               = $DataDir
    activation_file        = (Test-Path -LiteralPath $activationFile -PathType Leaf)
    activation_file_server = $null
    install_record         = @{}
    status_exit_code       = $null
}

function Get-CleanValue([string]$Value) {
    $Value = $Value.Trim()
    if ($notSet -contains $Value.ToLower()) { return $null }
    return $Value
}

function Set-StatusValue([string]$Key, [string]$Value) {
    # A `Service <name>` line is one service's state; the documented keys become facts.
    $label = $Key.Trim()
    if ($label -match '^Service\s+(?<name>\S+)$') {
        $name = $Matches['name']
        $word = $Value.Trim().ToLower()
        # Windows prints each service twice: once running/stopped, once enabled/disabled.
        if ($word -eq 'enabled' -or $word -eq 'disabled') { $name = "$name.startup" }
        $facts['services'][$name] = $word
    }
    elseif ($statusKeys.ContainsKey($label.ToLower())) {
        $facts[$statusKeys[$label.ToLower()]] = Get-CleanValue $Value
    }
}

if ($facts['activation_file']) {
    # Only the server line: the code stays in the file.
    $serverLine = Select-String -LiteralPath $activationFile -Pattern '^\s*masterconfig_server\s*:\s*(?<server>\S+)\s*$' |
        Select-Object -First 1
    if ($serverLine) { $facts['activation_file_server'] = $serverLine.Matches[0].Groups['server'].Value }
}

if ($RecordFile -and (Test-Path -LiteralPath $RecordFile -PathType Leaf)) {
    try {
        $record = Get-Content -Raw -LiteralPath $RecordFile | ConvertFrom-Json
        foreach ($property in $record.PSObject.Properties) { $facts['install_record'][$property.Name] = $property.Value }
    }
    catch { Write-Warning "ignoring the unreadable install record $RecordFile" }
}

if (Test-Path -LiteralPath $ctl -PathType Leaf) {
    $facts['installed'] = $true
    # `status` exits non-zero when the VEN is stopped or suspended: that is an answer, not a failure.
    $ErrorActionPreference = 'Continue'
    $global:LASTEXITCODE = 0
    $lines = @(& $ctl status *>&1 | ForEach-Object { [string]$_ })
    $facts['status_exit_code'] = $LASTEXITCODE
    $ErrorActionPreference = 'Stop'

    $pendingKey = $null
    foreach ($raw in $lines) {
        $line = $raw.Trim()
        if (-not $line) { continue }
        if ($line -match '^Illumio VEN is (?<state>\w+)') {
            $facts['state'] = $Matches['state'].ToLower()
            continue
        }
        if ($line -match '^(?<key>[A-Za-z][A-Za-z0-9 ._-]*?)\s*:\s*(?<value>.*)$') {
            if ($Matches['value']) {
                Set-StatusValue $Matches['key'] $Matches['value']
                $pendingKey = $null
            }
            else {
                # Windows prints some values on the line after their key.
                $pendingKey = $Matches['key']
            }
            continue
        }
        if ($pendingKey) {
            Set-StatusValue $pendingKey $line
            $pendingKey = $null
        }
    }

    if (-not $facts['version']) {
        # The version Programs and Features shows for the VEN.
        $uninstallKeys = @(
            'HKLM:\SOFTWARE\Microsoft\Windows\CurrentVersion\Uninstall\*',
            'HKLM:\SOFTWARE\WOW6432Node\Microsoft\Windows\CurrentVersion\Uninstall\*'
        )
        $entry = Get-ItemProperty -Path $uninstallKeys -ErrorAction SilentlyContinue |
            Where-Object { $_.PSObject.Properties['DisplayName'] -and $_.DisplayName -like 'Illumio VEN*' } |
            Select-Object -First 1
        if ($entry -and $entry.PSObject.Properties['DisplayVersion']) { $facts['version'] = [string]$entry.DisplayVersion }
    }

    $agentState = [string]$facts['agent_state']
    $activation = [string]$facts['activation']
    if (-not $activation) {
        if ($agentState -and @('unpaired', 'unknown', 'not activated') -notcontains $agentState.ToLower()) {
            $activation = 'activated'
        }
        elseif ($facts['activation_file']) { $activation = 'prepared' }
        else { $activation = 'not activated' }
    }
    $facts['activation'] = $activation.ToLower()
    $facts['activated'] = $facts['activation'] -eq 'activated'
    $facts['prepared'] = $facts['activation'] -eq 'prepared'
    $facts['suspended'] = ($facts['state'] -eq 'suspended') -or ($agentState.ToLower() -eq 'suspended')

    $serviceStates = @($facts['services'].GetEnumerator() | Where-Object { $_.Key -notlike '*.startup' } |
            ForEach-Object { $_.Value })
    if (-not $facts['state']) {
        if ($facts['suspended']) { $facts['state'] = 'suspended' }
        elseif ($serviceStates.Count -gt 0 -and @($serviceStates | Where-Object { $_ -ne 'running' }).Count -eq 0) {
            $facts['state'] = 'running'
        }
        elseif ($serviceStates.Count -gt 0) { $facts['state'] = 'stopped' }
        else { $facts['state'] = 'unknown' }
    }
    $facts['running'] = $facts['state'] -eq 'running'
    if ($facts['activated'] -and -not $facts['management_server'] -and $facts['install_record']['management_server']) {
        $facts['management_server'] = [string]$facts['install_record']['management_server']
    }
}

$Ansible.Result = $facts
