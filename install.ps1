# Install sfx on Windows from a GitHub release: downloads the x86_64 archive (it also
# runs on Windows on Arm), checks it against the release's SHA256SUMS, and puts sfx.exe
# in a directory of the user's (no administrator rights needed). Usage:
#
#   irm https://github.com/sfx-cli/sfx/releases/latest/download/install.ps1 | iex
#
# Settings (environment variables):
#   SFX_VERSION       a release such as 0.2.0 (default: the latest release)
#   SFX_INSTALL_DIR   where sfx.exe goes (default: %LOCALAPPDATA%\Programs\sfx\bin)
#   SFX_INSTALL_BASE  where the archives and SHA256SUMS are downloaded from
#   SFX_REPO          the GitHub repository (default: sfx-cli/sfx)
#
# On failure it stops with an error and installs nothing.
$ErrorActionPreference = 'Stop'
Set-StrictMode -Version 3.0
$ProgressPreference = 'SilentlyContinue'

function Fail([string]$Message) {
    throw "sfx-install: error: $Message"
}

$repo = if ($env:SFX_REPO) { $env:SFX_REPO } else { 'sfx-cli/sfx' }
$version = if ($env:SFX_VERSION) { $env:SFX_VERSION.TrimStart('v') } else { 'latest' }
if ($version -ne 'latest' -and $version -notmatch '^[0-9A-Za-z.+-]+$') {
    Fail "SFX_VERSION '$version' is not a version such as 0.2.0"
}
$base = if ($env:SFX_INSTALL_BASE) {
    $env:SFX_INSTALL_BASE.TrimEnd('/')
} elseif ($version -eq 'latest') {
    "https://github.com/$repo/releases/latest/download"
} else {
    "https://github.com/$repo/releases/download/v$version"
}
# Over plain http anyone on the path swaps the sums and the archive together: https only,
# except this machine (a local mirror, a test server).
if ($base -notmatch '^https://' -and $base -notmatch '^http://(127\.0\.0\.1|localhost|\[::1\])([:/]|$)') {
    Fail "SFX_INSTALL_BASE must be https:// (or http:// on this machine): $base"
}
$dir = if ($env:SFX_INSTALL_DIR) {
    $env:SFX_INSTALL_DIR
} else {
    Join-Path $env:LOCALAPPDATA 'Programs\sfx\bin'
}

$arch = [System.Runtime.InteropServices.RuntimeInformation]::OSArchitecture
if ($arch -ne 'X64' -and $arch -ne 'Arm64') {
    Fail "no prebuilt sfx for the $arch processor; build it from source: cargo install --locked --git https://github.com/$repo"
}
$target = 'x86_64-pc-windows-msvc'

$tmp = Join-Path ([System.IO.Path]::GetTempPath()) ("sfx-install-" + [System.Guid]::NewGuid())
New-Item -ItemType Directory -Path $tmp | Out-Null
try {
    $sums = Join-Path $tmp 'SHA256SUMS'
    try {
        Invoke-WebRequest -UseBasicParsing -TimeoutSec 300 -Uri "$base/SHA256SUMS" -OutFile $sums
    } catch {
        Fail "could not download $base/SHA256SUMS: $($_.Exception.Message)"
    }
    $pattern = '^([0-9a-f]{64})  \*?(sfx-[0-9A-Za-z.+-]+-' + [regex]::Escape($target) + '\.zip)$'
    $line = Get-Content $sums | Where-Object { $_ -match $pattern } | Select-Object -First 1
    if (-not $line) { Fail "$base/SHA256SUMS lists no archive for $target" }
    $null = $line -match $pattern
    $want = $Matches[1]
    $name = $Matches[2]

    Write-Host "sfx-install: downloading $name"
    $zip = Join-Path $tmp $name
    try {
        Invoke-WebRequest -UseBasicParsing -TimeoutSec 300 -Uri "$base/$name" -OutFile $zip
    } catch {
        Fail "could not download $base/${name}: $($_.Exception.Message)"
    }
    $got = (Get-FileHash -Algorithm SHA256 -Path $zip).Hash.ToLowerInvariant()
    if ($got -ne $want) {
        Fail "$name does not match its SHA-256 in SHA256SUMS (expected $want, got $got): not installing it"
    }

    $unpacked = Join-Path $tmp 'x'
    Expand-Archive -Path $zip -DestinationPath $unpacked
    $exe = Join-Path $unpacked (Join-Path ($name -replace '\.zip$', '') 'sfx.exe')
    if (-not (Test-Path $exe)) { Fail "$name holds no sfx.exe" }

    New-Item -ItemType Directory -Force -Path $dir | Out-Null
    # Move-Item onto a directory would move the binary into it and "succeed".
    if (Test-Path -PathType Container (Join-Path $dir 'sfx.exe')) {
        Fail "$(Join-Path $dir 'sfx.exe') is a directory: move it away, or set SFX_INSTALL_DIR to another directory"
    }
    # Copy next to the destination, then rename over it.
    $staged = Join-Path $dir ".sfx.exe.tmp.$PID"
    Copy-Item -Path $exe -Destination $staged -Force
    Move-Item -Path $staged -Destination (Join-Path $dir 'sfx.exe') -Force
    $installed = Join-Path $dir 'sfx.exe'
    Write-Host "sfx-install: installed $(& $installed --version) to $installed"
} finally {
    Remove-Item -Recurse -Force -Path $tmp -ErrorAction SilentlyContinue
}

$userPath = [Environment]::GetEnvironmentVariable('Path', 'User')
if (-not (($userPath -split ';') -contains $dir)) {
    Write-Host "sfx-install: $dir is not on your PATH; add it for your user with:"
    Write-Host "  [Environment]::SetEnvironmentVariable('Path', [Environment]::GetEnvironmentVariable('Path', 'User') + ';$dir', 'User')"
    Write-Host "then open a new terminal."
}
