# cdk-chap-credentials: connects this Windows host to one Storage Gateway iSCSI target with CHAP (Microsoft iSCSI
# initiator).
#
# ChapCredentials.wireHost renders this file with the app's values (the block below) into PowerShell user data.
#   1. starts the MSiSCSI service (automatic at boot), sets the initiator name and AWS's recommended timeouts for
#      gateway volumes (MaxRequestHoldTime and the disk TimeOutValue, 600 s; the disk one applies after a reboot);
#   2. reads the host's own CHAP pair from Secrets Manager with Get-SECSecretValue (AWS Tools for PowerShell);
#   3. connects with a persistent login, mutual CHAP when the pair has a target secret.
# A host that boots before its pair is stored, or before the gateway holds it, waits and retries, saying on one line
# each time what it waits for ($env:CHAP_WAIT_SECONDS in all, $env:CHAP_RETRY_SECONDS apart).
# The Microsoft initiator keeps ONE mutual-CHAP secret per machine. This script records, in a file only SYSTEM and
# Administrators can read, which targets the machine's secret serves and a salted hash of it (never the value); a
# target that needs another one stops the script with one line naming both targets, and the secret is left as it is.
# The same folder records which version of the secret the session logged in with (never a value): for constructs with
# `rotation`, the boot commands then register lib/host/rotate-windows.ps1 as a scheduled task that reconnects after one.
# Every step runs in-process (cmdlets and .NET): no secret is ever on a command line.

# >>> values (rendered by wireHost)
$ChapSecretId = ''
$ChapRegion = ''
$ChapTargetArn = ''
$ChapInitiatorName = ''
$ChapPortalAddress = ''
$ChapPortalPort = 3260
# <<< values

$ErrorActionPreference = 'Stop'
$WaitSeconds = 1800
if ($env:CHAP_WAIT_SECONDS) { $WaitSeconds = [int]$env:CHAP_WAIT_SECONDS }
$RetrySeconds = 15
if ($env:CHAP_RETRY_SECONDS) { $RetrySeconds = [int]$env:CHAP_RETRY_SECONDS }
$TargetIqn = $ChapTargetArn.Substring($ChapTargetArn.IndexOf('/target/') + 8)
$StateDirectory = Join-Path $env:ProgramData 'cdk-chap-credentials'
$MutualRecord = Join-Path $StateDirectory 'mutual-chap.json'
$SessionRecord = Join-Path $StateDirectory "session-$($TargetIqn -replace '[^A-Za-z0-9.-]', '_').json"

function Write-ChapLog([string] $Message) {
  Write-Host "cdk-chap-credentials: $Message"
}

function Set-InitiatorSettings {
  New-StateDirectory
  Set-Service -Name MSiSCSI -StartupType Automatic
  Start-Service -Name MSiSCSI
  $port = Get-InitiatorPort | Where-Object { "$($_.ConnectionType)" -eq 'iSCSI' } | Select-Object -First 1
  if ($port.NodeAddress -ne $ChapInitiatorName) {
    Set-InitiatorPort -NodeAddress $port.NodeAddress -NewNodeAddress $ChapInitiatorName | Out-Null
    Write-ChapLog "initiator name set to $ChapInitiatorName (was $($port.NodeAddress))"
  }
  # The iSCSI initiator is a SCSI adapter: its instance key under the SCSI adapters' class holds its parameters.
  $adapters = 'HKLM:\SYSTEM\CurrentControlSet\Control\Class\{4D36E97B-E325-11CE-BFC1-08002BE10318}'
  foreach ($instance in Get-ChildItem -Path $adapters -ErrorAction SilentlyContinue) {
    $description = (Get-ItemProperty -Path $instance.PSPath -Name DriverDesc -ErrorAction SilentlyContinue).DriverDesc
    if ($description -eq 'Microsoft iSCSI Initiator') {
      Set-ItemProperty -Path (Join-Path $instance.PSPath 'Parameters') -Name MaxRequestHoldTime -Value 600 -Type DWord
    }
  }
  Set-ItemProperty -Path 'HKLM:\SYSTEM\CurrentControlSet\Services\disk' -Name TimeOutValue -Value 600 -Type DWord
}

# The pair, or the reason it cannot be used yet: @{ Pair = ...; Waiting = ... }.
function Get-ChapPair {
  try {
    $secret = Get-SECSecretValue -SecretId $ChapSecretId -Region $ChapRegion
    $value = $secret.SecretString
  } catch {
    return @{ Waiting = "the secret $ChapSecretId to be readable ($($_.Exception.Message -replace '\s+', ' '))" }
  }
  try {
    $pair = $value | ConvertFrom-Json
  } catch {
    return @{ Waiting = "the secret $ChapSecretId to hold this host's CHAP pair (it holds no JSON object yet)" }
  }
  if ($pair.initiatorName -and $pair.initiatorName -ne $ChapInitiatorName) {
    throw "cdk-chap-credentials: the secret $ChapSecretId holds the pair of $($pair.initiatorName), not of this host ($ChapInitiatorName)"
  }
  if (-not ($pair.secretToAuthenticateInitiator -is [string]) -or -not $pair.secretToAuthenticateInitiator) {
    return @{ Waiting = "the secret $ChapSecretId to hold this host's CHAP pair (no secretToAuthenticateInitiator yet)" }
  }
  return @{ Pair = $pair; VersionId = $secret.VersionId }
}

function Get-SecretHash([byte[]] $Salt, [string] $Secret) {
  $derive = New-Object System.Security.Cryptography.Rfc2898DeriveBytes -ArgumentList @(
    $Secret, $Salt, 100000, [System.Security.Cryptography.HashAlgorithmName]::SHA256)
  try { return [Convert]::ToBase64String($derive.GetBytes(32)) } finally { $derive.Dispose() }
}

# A folder only SYSTEM and Administrators can open (inheritance from ProgramData removed).
function New-StateDirectory {
  if (-not (Test-Path -Path $StateDirectory)) { New-Item -ItemType Directory -Path $StateDirectory | Out-Null }
  $acl = New-Object System.Security.AccessControl.DirectorySecurity
  $acl.SetAccessRuleProtection($true, $false)
  foreach ($sid in 'S-1-5-18', 'S-1-5-32-544') {
    $identity = New-Object System.Security.Principal.SecurityIdentifier -ArgumentList $sid
    $acl.AddAccessRule((New-Object System.Security.AccessControl.FileSystemAccessRule -ArgumentList @(
      $identity, 'FullControl', 'ContainerInherit, ObjectInherit', 'None', 'Allow')))
  }
  Set-Acl -Path $StateDirectory -AclObject $acl
}

# Sets the machine's mutual-CHAP secret, unless another target needs a different one.
function Set-MutualSecret([string] $TargetSecret) {
  New-StateDirectory
  $targets = @($TargetIqn)
  $salt = New-Object byte[] 16
  [System.Security.Cryptography.RandomNumberGenerator]::Create().GetBytes($salt)
  if (Test-Path -Path $MutualRecord) {
    $record = Get-Content -Raw -Path $MutualRecord | ConvertFrom-Json
    $recordSalt = [Convert]::FromBase64String($record.salt)
    $others = @($record.targets | Where-Object { $_ -ne $TargetIqn })
    if ((Get-SecretHash $recordSalt $TargetSecret) -eq $record.hash) {
      $targets = @($record.targets) + $targets | Select-Object -Unique
      $salt = $recordSalt
    } elseif ($others.Count -gt 0) {
      throw ("cdk-chap-credentials: target $TargetIqn needs another mutual-CHAP secret than target $($others[0]), which set " +
        "this machine's one (the Microsoft initiator keeps one per machine): give both the same SecretToAuthenticateTarget " +
        "or connect one of them with one-way CHAP; the machine's secret was left as it is")
    }
  }
  Set-IscsiChapSecret -ChapSecret $TargetSecret | Out-Null
  $entry = [ordered]@{ targets = @($targets); salt = [Convert]::ToBase64String($salt); hash = (Get-SecretHash $salt $TargetSecret) }
  Set-Content -Path $MutualRecord -Value (ConvertTo-Json -InputObject $entry -Compress)
}

# One attempt: returns $null when connected, otherwise what it waits for.
function Connect-ChapTarget {
  $found = Get-ChapPair
  if ($found.Waiting) { return $found.Waiting }
  $pair = $found.Pair
  $type = 'ONEWAYCHAP'
  if ($pair.secretToAuthenticateTarget) {
    Set-MutualSecret $pair.secretToAuthenticateTarget
    $type = 'MUTUALCHAP'
  }
  try {
    if (-not (Get-IscsiTargetPortal -TargetPortalAddress $ChapPortalAddress -ErrorAction SilentlyContinue)) {
      New-IscsiTargetPortal -TargetPortalAddress $ChapPortalAddress -TargetPortalPortNumber $ChapPortalPort | Out-Null
    }
    $target = Get-IscsiTarget -NodeAddress $TargetIqn -ErrorAction SilentlyContinue
    if ($target -and $target.IsConnected) { return $null }
    Connect-IscsiTarget -NodeAddress $TargetIqn -TargetPortalAddress $ChapPortalAddress -TargetPortalPortNumber $ChapPortalPort `
      -AuthenticationType $type -ChapUsername $ChapInitiatorName -ChapSecret $pair.secretToAuthenticateInitiator `
      -IsPersistent $true | Out-Null
  } catch {
    return "the target $TargetIqn at ${ChapPortalAddress}:$ChapPortalPort to accept this host ($($_.Exception.Message -replace '\s+', ' '))"
  }
  # Which version of the secret the session logged in with (never a value), for the rotation task.
  Set-Content -Path $SessionRecord -Value (ConvertTo-Json -Compress -InputObject ([ordered]@{ versionId = $found.VersionId; disconnectedSince = $null }))
  return $null
}

if (-not (Get-Command -Name Get-SECSecretValue -ErrorAction SilentlyContinue)) {
  throw ('cdk-chap-credentials: Get-SECSecretValue is missing: install AWS Tools for PowerShell ' +
    '(Install-Module AWS.Tools.SecretsManager); Amazon''s Windows Server AMIs have it')
}
Set-InitiatorSettings
$started = Get-Date
$tries = 0
while ($true) {
  $waiting = Connect-ChapTarget
  if (-not $waiting) { break }
  $tries++
  $elapsed = [int]((Get-Date) - $started).TotalSeconds
  if ($elapsed -ge $WaitSeconds) {
    throw "cdk-chap-credentials: gave up after $elapsed s and $tries attempts, waiting for $waiting"
  }
  Write-ChapLog "waiting for $waiting; attempt $tries, retrying in $RetrySeconds s"
  Start-Sleep -Seconds $RetrySeconds
}
Write-ChapLog "connected to $TargetIqn at ${ChapPortalAddress}:$ChapPortalPort as $ChapInitiatorName"
