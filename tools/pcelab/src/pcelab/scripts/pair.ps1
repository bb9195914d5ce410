# Illumio VEN @@SCRIPT_NAME@@ for Windows, served by pcelab (the lab PCE) for pairing profile @@PROFILE_ID@@.
#
#   .\@@SCRIPT_NAME@@ -management-server HOST:PORT -activation-code CODE [-ca-file FILE]
#                   [-name N] [-role R] [-app A] [-env E] [-loc L] [-enforcement_mode M] [-visibility_level V]
#
# Single-dash options and no colons in option values, as the Windows VEN requires. Asks the PCE which
# package (MSI, else EXE) of the profile's VEN release fits this machine, downloads it over TLS verified
# against the lab CA embedded below (or -ca-file), checks its SHA-256, installs it silently, then
# @@FINAL_STEP_SUMMARY@@. The activation code is never written to the log.
$ErrorActionPreference = 'Stop'
Set-StrictMode -Version 2.0

$ProfileId = '@@PROFILE_ID@@'
$Mode = '@@MODE@@'
$InstallDir = Join-Path $env:ProgramFiles 'Illumio'
$DataDir = Join-Path $env:ProgramData 'Illumio'
$WorkDir = Join-Path $env:windir 'temp\illumio_pair'
$LogFile = Join-Path $env:windir 'temp\illumio_install.log'
$Ctl = Join-Path $InstallDir 'illumio-ven-ctl.ps1'
$EmbeddedCa = @'
@@CA_PEM@@
'@

function Fail([string]$Message) {
    Write-Log "ERROR: $Message"
    exit 1
}

function Write-Log([string]$Message) {
    Write-Host $Message
    Add-Content -Path $LogFile -Value $Message
}

function Read-Arguments([string[]]$Words) {
    $parsed = @{ 'management-server' = ''; 'activation-code' = ''; 'ca-file' = ''; 'activate' = @() }
    $activateOptions = @('name', 'role', 'app', 'env', 'loc', 'mode', 'enforcement_mode', 'visibility_level', 'log_traffic')
    for ($i = 0; $i -lt $Words.Count; $i += 2) {
        $option = $Words[$i].TrimStart('-')
        if ($i + 1 -ge $Words.Count) { Fail "-$option needs a value" }
        $value = $Words[$i + 1]
        if ($value.Contains(':') -and $option -ne 'management-server' -and $option -ne 'ca-file') {
            Fail "-$option may not contain a colon (the Windows VEN rejects it)"
        }
        if ($parsed.ContainsKey($option) -and $option -ne 'activate') { $parsed[$option] = $value }
        elseif ($activateOptions -contains $option) { $parsed['activate'] += @("-$option", $value) }
        else { Fail "unknown option -$option" }
    }
    if (-not $parsed['management-server']) { Fail '-management-server HOST:PORT is required' }
    if ($parsed['activation-code'] -notmatch '^[0-9a-fA-F]+$') { Fail '-activation-code must be hexadecimal' }
    if ($Mode -eq 'prepare' -and $parsed['activate'].Count -gt 0) { Fail 'prepare.ps1 takes no activate options' }
    return $parsed
}

function Get-LabCaCertificate([string]$CaFile) {
    $pem = if ($CaFile) { Get-Content -Raw -Path $CaFile } else { $EmbeddedCa }
    $body = ($pem -replace '-----(BEGIN|END) CERTIFICATE-----', '') -replace '\s', ''
    return New-Object System.Security.Cryptography.X509Certificates.X509Certificate2(, [Convert]::FromBase64String($body))
}

function Enable-LabCaValidation($CaCertificate) {
    # Trust the lab CA for this process only: the chain must end at exactly that certificate, and the
    # host name must match (no other SSL policy error may be present).
    [System.Net.ServicePointManager]::SecurityProtocol = [System.Net.SecurityProtocolType]::Tls12
    $script:LabCaThumbprint = $CaCertificate.Thumbprint
    $script:LabCa = $CaCertificate
    [System.Net.ServicePointManager]::ServerCertificateValidationCallback = {
        param($sender, $certificate, $chain, $errors)
        if (($errors -band [System.Net.Security.SslPolicyErrors]::RemoteCertificateNameMismatch) -ne 0) { return $false }
        $labChain = New-Object System.Security.Cryptography.X509Certificates.X509Chain
        $labChain.ChainPolicy.RevocationMode = 'NoCheck'
        $labChain.ChainPolicy.VerificationFlags = 'AllowUnknownCertificateAuthority'
        [void]$labChain.ChainPolicy.ExtraStore.Add($script:LabCa)
        if (-not $labChain.Build($certificate)) { return $false }
        $root = $labChain.ChainElements[$labChain.ChainElements.Count - 1].Certificate
        return $root.Thumbprint -eq $script:LabCaThumbprint
    }
}

function New-PceClient([string]$Code) {
    $client = New-Object System.Net.WebClient
    $client.Headers.Add('X-Lab-Activation-Code', $Code)
    return $client
}

function Get-Platform {
    $arch = if ($env:PROCESSOR_ARCHITEW6432) { $env:PROCESSOR_ARCHITEW6432 } else { $env:PROCESSOR_ARCHITECTURE }
    $version = [Environment]::OSVersion.Version
    return @{ os_id = 'windows'; os_version = "$($version.Major).$($version.Minor)"; arch = $arch.ToLower() }
}

function Select-Package($Client, [string]$Server, $Platform) {
    foreach ($type in @('msi', 'exe')) {
        $query = "profile_id=$ProfileId&os_id=$($Platform.os_id)&os_version=$($Platform.os_version)" +
            "&os_like=&arch=$($Platform.arch)&pkg_type=$type"
        try { $answer = $Client.DownloadString("https://$Server/lab/ven-software/select?$query") }
        catch { continue }
        $package = @{ pkg_type = $type }
        foreach ($line in $answer -split "`n") {
            $key, $value = $line.Trim() -split '=', 2
            if ($key) { $package[$key] = $value }
        }
        if ($package['file'] -match '^[A-Za-z0-9][A-Za-z0-9._+-]*$' -and $package['sha256'] -match '^[0-9a-f]{64}$') {
            return $package
        }
    }
    Fail 'the PCE has no Windows VEN package for this machine'
}

function Install-Package($Client, [string]$Server, $Package) {
    Write-Log "Retrieving Illumio Packages: VEN $($Package.release) ($($Package.file))"
    $local = Join-Path $WorkDir $Package.file
    $Client.DownloadFile("https://$Server$($Package.path)", $local)
    Write-Log 'Validating sha256'
    $actual = (Get-FileHash -Algorithm SHA256 -Path $local).Hash.ToLower()
    if ($actual -ne $Package.sha256) { Fail "sha256 of $($Package.file) is $actual, expected $($Package.sha256)" }
    Write-Log 'Installing Illumio Packages'
    if ($Package.pkg_type -eq 'msi') {
        $process = Start-Process -FilePath 'msiexec.exe' -Wait -PassThru -ArgumentList @(
            '/i', "`"$local`"", '/qn', '/norestart', '/l*v', "`"$(Join-Path $WorkDir 'msi_install.log')`"")
    } else {
        $process = Start-Process -FilePath $local -Wait -PassThru -ArgumentList @('/install', '/quiet', '/norestart')
    }
    if ($process.ExitCode -ne 0) { Fail "installer exited with code $($process.ExitCode)" }
    if (-not (Test-Path $Ctl)) { Fail "the package did not install $Ctl" }
}

function Complete-Pairing($Options) {
    $server = $Options['management-server']
    $code = $Options['activation-code']
    if ($Mode -eq 'prepare') {
        $config = Join-Path $DataDir 'etc\agent_activation.cfg'
        New-Item -ItemType Directory -Force -Path (Split-Path $config) | Out-Null
        Set-Content -Path $config -Value @("activation_code: $code", "masterconfig_server: $server")
        Write-Log "Wrote $config; the VEN activates with the PCE at the next boot"
        return
    }
    Write-Log 'Pairing with Illumio'
    $activate = @('activate', '-management-server', $server, '-activation-code', $code) + $Options['activate']
    & $Ctl @activate
    if ($LASTEXITCODE -ne 0) { Fail 'VEN activation failed' }
    Write-Log 'Workload has been SUCCESSFULLY paired with Illumio'
}

New-Item -ItemType Directory -Force -Path $WorkDir | Out-Null
$options = Read-Arguments $args
Enable-LabCaValidation (Get-LabCaCertificate $options['ca-file'])
$client = New-PceClient $options['activation-code']
$platform = Get-Platform
Write-Log "Detected [$($platform.arch)][$($platform.os_id)][$($platform.os_version)]"
$package = Select-Package $client $options['management-server'] $platform
Install-Package $client $options['management-server'] $package
Complete-Pairing $options
