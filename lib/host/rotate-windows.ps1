# cdk-chap-credentials: keeps this Windows host connected to one Storage Gateway iSCSI target through CHAP rotations.
#
# ChapCredentials.wireHost writes this file, rendered with the app's values (the block below), for constructs with
# `rotation`, and registers it as a scheduled task that runs as SYSTEM every minute and at startup. A rotation changes
# this host's initiator secret on the gateway, and UpdateChapCredentials closes every connection of the target: the
# Microsoft initiator then retries with the secret it logged in with, which the gateway refuses. Each run:
#   1. the target's session is connected: nothing else (no AWS call, no write);
#   2. disconnected, and the initiator's own logins were refused (iScsiPrt event 10, login failed with an initiator
#      error, since the session was last seen connected), or there is no session at all and it has been down for
#      $StaleSeconds (a persistent login that failed at boot): reads the host's own secret, AWSPENDING first, then
#      AWSCURRENT (Get-SECSecretValue -VersionStage);
#   3. when a version differs from the one the session logged in with: removes the stale persistent login, disconnects,
#      and connects again with a persistent login, trying the new versions first (AWSPENDING, AWSCURRENT), then the
#      session's own (mutual CHAP when the pair has a target secret, which a rotation does not change). The machine's
#      one mutual secret is kept as connect-windows.ps1 keeps it: never overwritten with another value; a conflict
#      stops with one line naming both targets.
# Otherwise the session is left to the initiator's own retries (the gateway may just be away): IO is held meanwhile.
# One line per run that acts, in a log only SYSTEM and Administrators can read: what it did or waits for, never a value.
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
$StaleSeconds = 300
$TargetIqn = $ChapTargetArn.Substring($ChapTargetArn.IndexOf('/target/') + 8)
$StateDirectory = Join-Path $env:ProgramData 'cdk-chap-credentials'
$MutualRecord = Join-Path $StateDirectory 'mutual-chap.json'
$SessionRecord = Join-Path $StateDirectory "session-$($TargetIqn -replace '[^A-Za-z0-9.-]', '_').json"
$LogFile = Join-Path $StateDirectory "rotate-$($TargetIqn -replace '[^A-Za-z0-9.-]', '_').log"

function Write-ChapLog([string] $Message) {
  $line = "$((Get-Date).ToUniversalTime().ToString('yyyy-MM-ddTHH:mm:ssZ')) cdk-chap-credentials: $Message"
  if ((Test-Path -Path $LogFile) -and (Get-Item -Path $LogFile).Length -gt 1048576) {
    Move-Item -Path $LogFile -Destination "$LogFile.old" -Force
  }
  Add-Content -Path $LogFile -Value $line
  Write-Host $line
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

# What this host knows of its session (never a secret): the secret version it logged in with, and since when it is down.
function Get-SessionRecord {
  $record = [ordered]@{ versionId = $null; disconnectedSince = $null }
  if (Test-Path -Path $SessionRecord) {
    $saved = Get-Content -Raw -Path $SessionRecord | ConvertFrom-Json
    $record.versionId = $saved.versionId
    $record.disconnectedSince = $saved.disconnectedSince
  }
  return $record
}

function Save-SessionRecord($Record) {
  Set-Content -Path $SessionRecord -Value (ConvertTo-Json -InputObject $Record -Compress)
}

# Whether the initiator's logins were refused since $Since: iScsiPrt event 10 (login failed) whose login response, in the
# event's dump data after the 40-byte error log header, has status class 2 (initiator error: authentication or
# authorization failure). An event whose dump data cannot be read counts as refused: it only allows one secret read.
function Test-LoginRefused([datetime] $Since) {
  $events = @(Get-WinEvent -FilterHashtable @{ LogName = 'System'; ProviderName = 'iScsiPrt'; Id = 10; StartTime = $Since } `
    -ErrorAction SilentlyContinue)
  foreach ($entry in $events) {
    $hex = ([xml]$entry.ToXml()).Event.EventData.Binary
    if (-not $hex -or $hex.Length -lt 2 * 78) { return $true }
    if ([Convert]::ToByte($hex.Substring(2 * 76, 2), 16) -eq 2) { return $true }
  }
  return $false
}

# The host's pair at each stage, AWSPENDING first: @{ Stage; VersionId; Pair } per distinct version, or a reason to wait.
function Get-ChapCandidates {
  $candidates = @()
  foreach ($stage in 'AWSPENDING', 'AWSCURRENT') {
    try {
      $secret = Get-SECSecretValue -SecretId $ChapSecretId -Region $ChapRegion -VersionStage $stage
    } catch {
      if ($stage -eq 'AWSPENDING') { continue }
      return @{ Waiting = "the secret $ChapSecretId to be readable ($($_.Exception.Message -replace '\s+', ' '))" }
    }
    if (@($candidates | Where-Object { $_.VersionId -eq $secret.VersionId }).Count -gt 0) { continue }
    try {
      $pair = $secret.SecretString | ConvertFrom-Json
    } catch {
      continue
    }
    if ($pair.initiatorName -and $pair.initiatorName -ne $ChapInitiatorName) {
      throw "cdk-chap-credentials: the secret $ChapSecretId holds the pair of $($pair.initiatorName), not of this host ($ChapInitiatorName)"
    }
    if (($pair.secretToAuthenticateInitiator -is [string]) -and $pair.secretToAuthenticateInitiator) {
      $candidates += @{ Stage = $stage; VersionId = $secret.VersionId; Pair = $pair }
    }
  }
  if ($candidates.Count -eq 0) { return @{ Waiting = "the secret $ChapSecretId to hold this host's CHAP pair" } }
  return @{ Candidates = $candidates }
}

# Drops the session the gateway no longer accepts, and its persistent login (it holds the old secret).
function Remove-StaleLogin($Sessions) {
  foreach ($session in $Sessions) {
    if ($session.IsPersistent) { Unregister-IscsiSession -SessionIdentifier $session.SessionIdentifier | Out-Null }
  }
  if (Get-IscsiTarget -NodeAddress $TargetIqn -ErrorAction SilentlyContinue) {
    Disconnect-IscsiTarget -NodeAddress $TargetIqn -Confirm:$false -ErrorAction SilentlyContinue | Out-Null
  }
}

function Invoke-RotationCheck {
  Start-Service -Name MSiSCSI
  $record = Get-SessionRecord
  $sessions = @(Get-IscsiSession -ErrorAction SilentlyContinue | Where-Object { $_.TargetNodeAddress -eq $TargetIqn })
  $target = Get-IscsiTarget -NodeAddress $TargetIqn -ErrorAction SilentlyContinue
  if (@($sessions | Where-Object { $_.IsConnected }).Count -gt 0 -or ($target -and $target.IsConnected)) {
    if ($record.disconnectedSince) {
      $record.disconnectedSince = $null
      Save-SessionRecord $record
      Write-ChapLog "$TargetIqn is connected again (the initiator reconnected on its own)"
    }
    return
  }
  $now = (Get-Date).ToUniversalTime()
  New-StateDirectory
  if (-not $record.disconnectedSince) {
    $record.disconnectedSince = ([DateTimeOffset]$now).ToUnixTimeSeconds()
    Save-SessionRecord $record
  }
  $down = [DateTimeOffset]::FromUnixTimeSeconds([long]$record.disconnectedSince).UtcDateTime
  $boot = (Get-CimInstance -ClassName Win32_OperatingSystem).LastBootUpTime.ToUniversalTime()
  $since = $down.AddSeconds(-120)
  if ($boot -gt $since) { $since = $boot }
  $seconds = [int]($now - $down).TotalSeconds
  if (-not (Test-LoginRefused $since.ToLocalTime()) -and ($sessions.Count -gt 0 -or $seconds -lt $StaleSeconds)) {
    Write-ChapLog "waiting for the initiator to reconnect to $TargetIqn on its own (down $seconds s, no login refused yet; no AWS call)"
    return
  }
  $found = Get-ChapCandidates
  if ($found.Waiting) {
    Write-ChapLog "waiting for $($found.Waiting); $TargetIqn down $seconds s"
    return
  }
  $fresh = @($found.Candidates | Where-Object { $_.VersionId -ne $record.versionId })
  if ($fresh.Count -eq 0) {
    Write-ChapLog ("waiting for the target $TargetIqn at ${ChapPortalAddress}:$ChapPortalPort to accept this host again: its secret " +
      "is the version the session logged in with ($($record.versionId)), so the initiator keeps retrying it; down $seconds s")
    return
  }
  Remove-StaleLogin $sessions
  if (-not (Get-IscsiTargetPortal -TargetPortalAddress $ChapPortalAddress -ErrorAction SilentlyContinue)) {
    New-IscsiTargetPortal -TargetPortalAddress $ChapPortalAddress -TargetPortalPortNumber $ChapPortalPort | Out-Null
  }
  # The new versions first; the session's own last, should the gateway still hold it.
  $refusals = @()
  $ordered = @($fresh) + @($found.Candidates | Where-Object { $_.VersionId -eq $record.versionId })
  foreach ($candidate in $ordered) {
    $type = 'ONEWAYCHAP'
    if ($candidate.Pair.secretToAuthenticateTarget) {
      Set-MutualSecret $candidate.Pair.secretToAuthenticateTarget
      $type = 'MUTUALCHAP'
    }
    try {
      Connect-IscsiTarget -NodeAddress $TargetIqn -TargetPortalAddress $ChapPortalAddress -TargetPortalPortNumber $ChapPortalPort `
        -AuthenticationType $type -ChapUsername $ChapInitiatorName -ChapSecret $candidate.Pair.secretToAuthenticateInitiator `
        -IsPersistent $true | Out-Null
    } catch {
      $refusals += "$($candidate.Stage) version $($candidate.VersionId): $($_.Exception.Message -replace '\s+', ' ')"
      continue
    }
    Save-SessionRecord ([ordered]@{ versionId = $candidate.VersionId; disconnectedSince = $null })
    Write-ChapLog "reconnected to $TargetIqn at ${ChapPortalAddress}:$ChapPortalPort with the $($candidate.Stage) credentials (version $($candidate.VersionId), $type) after $seconds s"
    return
  }
  Write-ChapLog "waiting for the target $TargetIqn to accept this host's new credentials ($($refusals -join '; ')); retrying next run"
}

try {
  Invoke-RotationCheck
} catch {
  Write-ChapLog "stopped: $($_.Exception.Message -replace '^cdk-chap-credentials: ', '')"
  exit 1
}
