# Installs (and pairs, or prepares) the Illumio VEN with the PCE's Windows pairing script (microseg.illumio.ven).
#
# Does what the PCE's documented one-liner does, in this PowerShell process: negotiate TLS 1.2, download
# pair.ps1 (or prepare.ps1) of the pairing profile to $env:windir\temp with System.Net.WebClient, then run
# it with `&` and single-dash options:  -management-server HOST:PORT -activation-code CODE [-role R ...]
# The activation code arrives as a parameter of this script (inside the module's payload, never on a command
# line) and is blanked out of everything this script returns.
[CmdletBinding()]
param (
    [Parameter(Mandatory = $true)][string]$Url,
    [Parameter(Mandatory = $true)][ValidateSet('pair.ps1', 'prepare.ps1')][string]$ScriptName,
    [Parameter(Mandatory = $true)][string]$ManagementServer,
    [Parameter(Mandatory = $true)][string]$ActivationCode,
    [string[]]$ActivateArguments = @(),
    [string]$CaFile = '',
    [string]$ProxyServer = ''
)

$ErrorActionPreference = 'Stop'

if ($ActivationCode -notmatch '^[0-9A-Fa-f]+$') { throw 'the activation code must be the hexadecimal code of a pairing key' }
if ($ManagementServer -notmatch '^[A-Za-z0-9.-]+:[0-9]{1,5}$') { throw "management server must be HOST:PORT, not '$ManagementServer'" }
foreach ($word in $ActivateArguments) {
    if ($word.Contains(':')) { throw "the Windows VEN rejects colons in activate options: '$word'" }
}

function Hide-Code([string]$Text) {
    if (-not $Text) { return $Text }
    return $Text.Replace($ActivationCode, '<activation code>')
}

function Enable-PceCa([string]$Path) {
    # Trust the PCE's private CA for this process only: the chain must end at that certificate and the host
    # name must match. Without a CA file the host's own trust store decides, as with the one-liner.
    $pem = Get-Content -Raw -LiteralPath $Path
    $body = ($pem -replace '-----(BEGIN|END) CERTIFICATE-----', '') -replace '\s', ''
    $script:PceCa = New-Object System.Security.Cryptography.X509Certificates.X509Certificate2 (, [Convert]::FromBase64String($body))
    [System.Net.ServicePointManager]::ServerCertificateValidationCallback = {
        param ($origin, $certificate, $chain, $errors)
        if (($errors -band [System.Net.Security.SslPolicyErrors]::RemoteCertificateNameMismatch) -ne 0) { return $false }
        if ($errors -eq [System.Net.Security.SslPolicyErrors]::None) { return $true }
        $pceChain = New-Object System.Security.Cryptography.X509Certificates.X509Chain
        $pceChain.ChainPolicy.RevocationMode = 'NoCheck'
        $pceChain.ChainPolicy.VerificationFlags = 'AllowUnknownCertificateAuthority'
        [void]$pceChain.ChainPolicy.ExtraStore.Add($script:PceCa)
        if (-not $pceChain.Build($certificate)) { return $false }
        $root = $pceChain.ChainElements[$pceChain.ChainElements.Count - 1].Certificate
        return $root.Thumbprint -eq $script:PceCa.Thumbprint
    }
}

$scriptPath = Join-Path $env:windir "temp\$ScriptName"
$output = @()
try {
    # As the one-liner: 3072 is TLS 1.2, also where the enum has no Tls12 name yet.
    [System.Net.ServicePointManager]::SecurityProtocol = [Enum]::ToObject([System.Net.SecurityProtocolType], 3072)
    if ($CaFile) { Enable-PceCa $CaFile }
    $client = New-Object System.Net.WebClient
    if ($ProxyServer) {
        $proxyUri = if ($ProxyServer -match '^[A-Za-z][A-Za-z0-9+.-]*://') { $ProxyServer } else { "http://$ProxyServer" }
        $client.Proxy = New-Object System.Net.WebProxy ($proxyUri, $true)
    }
    $client.DownloadFile($Url, $scriptPath)

    $arguments = @('-management-server', $ManagementServer, '-activation-code', $ActivationCode) + $ActivateArguments
    # The script may write errors and still finish; its exit code says how it went.
    $ErrorActionPreference = 'Continue'
    $global:LASTEXITCODE = 0
    $output = @(& $scriptPath @arguments *>&1 | ForEach-Object { Hide-Code ([string]$_) })
    $exitCode = $LASTEXITCODE
    $ErrorActionPreference = 'Stop'
}
catch {
    throw (Hide-Code $_.Exception.Message)
}
finally {
    [System.Net.ServicePointManager]::ServerCertificateValidationCallback = $null
    Remove-Item -LiteralPath $scriptPath -Force -ErrorAction SilentlyContinue
}

$Ansible.Changed = $true
$Ansible.Result = @{ script = $ScriptName; exit_code = $exitCode; output = $output }
if ($exitCode -ne 0) {
    $Ansible.Failed = $true
    $tail = ($output | Select-Object -Last 5) -join ' / '
    throw "$ScriptName failed (exit $exitCode): $tail"
}
